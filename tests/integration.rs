//! Every integration test, one module per file, in ONE test binary: on a
//! 2-core machine one crate to compile and one executable to link (24 of
//! each before), and cargo runs the tests of all files side by side instead
//! of one binary after another. Run a file's tests with
//! `cargo test --release --test integration FILE::` (e.g. `predict::`).
//! GPU tests share the one device through `common::gpu`'s turns.

mod common;

mod audio_decode;
mod audio_render;
mod bad_input;
mod bench_cli;
mod cli;
mod dag_engine;
mod dataset_percepiano;
mod encoder_golden;
mod engine_cli;
mod experiments_stage;
mod features_device;
mod features_golden;
mod features_stage;
mod fuzz_inputs;
mod gpu_device;
mod gpu_golden;
mod gpu_kernels;
mod heads_stage;
mod history;
mod muq_golden;
mod pipeline_engine;
mod predict;
mod shards;
mod states_cache;
