//! Every head kind from `pipeline.toml` through the DAG: sequence heads on
//! the MERT control's frames, the mel-CNN on mel frames, the two-input heads
//! on MERT + MuQ control frames, the study's training options on a pooled
//! set. Each experiment trains (finite out-of-fold predictions in the
//! results), and editing one experiment retrains only it.

use arrow_array::{Float64Array, StringArray};
use pipe::table;
use std::path::Path;

use crate::common::pipeline;
use crate::common::tones;
use pipeline::computed;

const N_CLIPS: usize = 16;

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // Different lengths, so batches are padded.
    let csv = tones::tone_clips(dir.path(), N_CLIPS, |i| 9_000 + 1_500 * (i % 4));
    std::fs::write(dir.path().join("labels.csv"), csv).unwrap();
    dir
}

const KINDS: [(&str, &str, &str); 10] = [
    ("ATT", "frames", "arch = \"attention\""),
    ("LSTM", "frames", "arch = \"bilstm\", lstm_hidden = 4"),
    (
        "TF",
        "frames",
        "arch = \"transformer\", transformer_heads = 2, transformer_ffn = 16, transformer_layers = 1",
    ),
    (
        "PD",
        "frames",
        "arch = \"per_dim\", lstm_hidden = 4, lstm_layers = 1, per_dim_hidden = [4]",
    ),
    (
        "CNN",
        "mel",
        "arch = \"mel_cnn\", cnn_channels = [2, 4], cnn_pools = 1",
    ),
    (
        "CON",
        "frames",
        "arch = \"attention\", contrastive_weight = 0.5, contrastive_decay = 0.1, contrastive_projection = [8, 4]",
    ),
    ("ENS", "frames2", "arch = \"ensemble\""),
    ("CAT", "frames2", "arch = \"concat\", fusion_dim = 8"),
    (
        "GATE",
        "frames2",
        "arch = \"gated\", fusion_dim = 8, gate_head_hidden = 4",
    ),
    (
        "STUDY",
        "pooled",
        "hidden = [16, 16], weight_decay_mode = \"decoupled\", lr_schedule = \"cosine\", grad_clip = 1.0",
    ),
];

fn config(lr: &str) -> String {
    let mut text = r#"
[dataset]
kind = "audio_folder"
audio_dir = "audio"
labels = "labels.csv"
[dataset.folds]
k = 4
[encoders.mert]
arch = "mert"
random = "control"
device = "cpu"
[encoders.muq]
arch = "muq"
random = "control"
device = "cpu"
[features.frames]
encoder = "mert"
layers = "7-12"
pooling = "frames"
max_frames = 30
[features.muq_frames]
encoder = "muq"
layers = "9-12"
pooling = "frames"
max_frames = 20
[features.pooled]
encoder = "mert"
layers = "7-12"
[features.mel]
encoder = "mel_frames"
max_frames = 24
[evaluation]
resamples = 50
label_only = []   # the label-only baselines: tests/experiments_stage.rs
"#
    .to_string();
    for (id, set, head) in KINDS {
        let (features, second) = match set {
            "frames2" => ("frames", "second_features = \"muq_frames\"\n"),
            other => (other, ""),
        };
        let lr = if id == "ATT" { lr } else { "1e-3" };
        text.push_str(&format!(
            "[experiments.{id}]\nfeatures = \"{features}\"\n{second}head = {{ {head}, hidden = [8], max_epochs = 3, batch_size = 4, lr = {lr} }}\n"
        ));
    }
    // STUDY sets its own hidden list; TOML rejects the duplicate key, so drop ours.
    text.replace("grad_clip = 1.0, hidden = [8]", "grad_clip = 1.0")
}

#[test]
fn every_head_kind_trains_from_pipeline_toml_and_edits_retrain_one() {
    let dir = setup();
    let (report, _) = pipeline::run(dir.path(), &config("1e-3"));
    assert_eq!(computed(&report, "train"), KINDS.len());
    let s = table::read_single(&dir.path().join("data/out/results/summary.parquet")).unwrap();
    let exp = table::column::<StringArray>(&s, "experiment").unwrap();
    let status = table::column::<StringArray>(&s, "status").unwrap();
    let r2 = table::column::<Float64Array>(&s, "r2").unwrap();
    for (id, _, _) in KINDS {
        let i = (0..s.num_rows())
            .find(|&i| exp.value(i) == id)
            .unwrap_or_else(|| panic!("{id} missing"));
        assert_eq!(status.value(i), "ran", "{id}");
        assert!(r2.value(i).is_finite(), "{id}: R² {}", r2.value(i));
    }
    // The mel source wrote 128-band frame sequences.
    let mel = table::read_single(&dir.path().join("data/out/features/mel.parquet")).unwrap();
    assert_eq!(mel.schema().metadata()["pipe.dim"], "128");
    // Editing one experiment retrains only it; nothing upstream reruns.
    let (again, _) = pipeline::run(dir.path(), &config("2e-3"));
    assert_eq!(computed(&again, "train"), 1);
    assert_eq!(computed(&again, "features"), 0);
    assert_eq!(computed(&again, "feature_tables"), 0);
    let _ = Path::new(".");
}
