//! What `pipe query` prints: the result as an aligned text table (numbers
//! rounded for reading), or the result written to `--output` at full
//! precision; with no SQL, the tables there are to query.

use anyhow::{Context, Result, bail};
use arrow_array::{
    Array, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, TimeUnit};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::Config;

#[derive(clap::Args, Debug, Default)]
pub struct QueryArgs {
    /// The SQL, e.g. "select experiment, r2 from summary order by rank".
    /// Without it: list the tables and their columns.
    pub sql: Option<String>,
    /// Write the result here instead of printing it (.parquet or .csv).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn query(config: &Config, args: &QueryArgs) -> Result<()> {
    let out = config.data_dir.join("out");
    let Some(sql) = &args.sql else {
        return list(&out);
    };
    if let Some(path) = &args.output {
        format_of(path)?; // before the query runs
    }
    let df = crate::query::run(&out, sql)?;
    let batch = crate::frame::to_batch(&df)?;
    match &args.output {
        None => {
            let mut stdout = std::io::stdout().lock();
            print_table(&batch, &mut stdout)?;
            writeln!(
                stdout,
                "({} row{})",
                batch.num_rows(),
                plural(batch.num_rows())
            )?;
        }
        Some(path) => {
            write(&batch, path)?;
            println!(
                "wrote {} row{} to {}",
                batch.num_rows(),
                plural(batch.num_rows()),
                path.display()
            );
        }
    }
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The tables under `out`: name, rows, columns (nested ones marked as left out).
fn list(out: &Path) -> Result<()> {
    let tables = crate::query::tables(out)?;
    if tables.is_empty() {
        bail!(
            "no tables under {}: run the pipeline first (`pipe run`)",
            out.display()
        );
    }
    for t in tables {
        let (schema, rows) = crate::table::read_schema(&t.path)?;
        let columns: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| {
                if f.data_type().is_nested() {
                    format!("({}: not queryable)", f.name())
                } else {
                    f.name().clone()
                }
            })
            .collect();
        println!("{} ({rows} rows): {}", t.name, columns.join(", "));
    }
    Ok(())
}

/// The file format `path` asks for: `parquet` or `csv`.
fn format_of(path: &Path) -> Result<&str> {
    match path.extension().and_then(|e| e.to_str()) {
        Some(ext @ ("parquet" | "csv")) => Ok(ext),
        _ => bail!(
            "--output {}: the file must end in .parquet or .csv",
            path.display()
        ),
    }
}

/// Writes the result atomically (a temporary file renamed into place).
fn write(batch: &RecordBatch, path: &Path) -> Result<()> {
    let bytes = match format_of(path)? {
        "parquet" => crate::table::to_bytes(batch)?,
        _ => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(batch.schema().fields().iter().map(|f| f.name()))?;
            for row in 0..batch.num_rows() {
                w.write_record(batch.columns().iter().map(|c| cell(c, row, true)))?;
            }
            w.into_inner().context("writing CSV")?
        }
    };
    crate::dag::store::write_atomic(path, &bytes)
}

/// The result as columns padded to their widest cell: text left-aligned,
/// numbers right-aligned, floats to 4 decimals (scientific when tiny or huge).
pub fn print_table(batch: &RecordBatch, w: &mut impl Write) -> Result<()> {
    let schema = batch.schema();
    let header: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let cells: Vec<Vec<String>> = batch
        .columns()
        .iter()
        .map(|c| (0..batch.num_rows()).map(|r| cell(c, r, false)).collect())
        .collect();
    let widths: Vec<usize> = header
        .iter()
        .zip(&cells)
        .map(|(h, col)| {
            col.iter()
                .map(|c| c.chars().count())
                .chain([h.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let right: Vec<bool> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().is_numeric())
        .collect();
    let line = |w: &mut dyn Write, row: &mut dyn Iterator<Item = &str>| -> std::io::Result<()> {
        let padded: Vec<String> = row
            .zip(&widths)
            .zip(&right)
            .map(|((s, &n), &r)| {
                if r {
                    format!("{s:>n$}")
                } else {
                    format!("{s:<n$}")
                }
            })
            .collect();
        writeln!(w, "{}", padded.join("  ").trim_end())
    };
    line(w, &mut header.iter().copied())?;
    let rules: Vec<String> = widths.iter().map(|&n| "-".repeat(n)).collect();
    line(w, &mut rules.iter().map(String::as_str))?;
    for r in 0..batch.num_rows() {
        line(w, &mut cells.iter().map(|c| c[r].as_str()))?;
    }
    Ok(())
}

/// One value as text: `null` (empty in files) where null; floats in full
/// (shortest round-trip, `1.25e-7`) when `full`, else rounded for reading.
fn cell(array: &dyn Array, row: usize, full: bool) -> String {
    if array.is_null(row) {
        return if full { String::new() } else { "null".into() };
    }
    let any = array.as_any();
    macro_rules! get {
        ($t:ty) => {
            any.downcast_ref::<$t>()
                .expect("array matches its data type")
                .value(row)
        };
    }
    let float = |x: f64| {
        if full || !x.is_finite() {
            format!("{x:?}")
        } else if x == 0.0 || (1e-3..1e6).contains(&x.abs()) {
            format!("{x:.4}")
        } else {
            format!("{x:.3e}")
        }
    };
    match array.data_type() {
        DataType::Utf8 => get!(StringArray).to_string(),
        DataType::Boolean => get!(BooleanArray).to_string(),
        DataType::Int32 => get!(Int32Array).to_string(),
        DataType::Int64 => get!(Int64Array).to_string(),
        DataType::UInt32 => get!(UInt32Array).to_string(),
        DataType::UInt64 => get!(UInt64Array).to_string(),
        // f32 in full is its own shortest form, not that of its f64 widening.
        DataType::Float32 if full => format!("{:?}", get!(Float32Array)),
        DataType::Float32 => float(get!(Float32Array) as f64),
        DataType::Float64 => float(get!(Float64Array)),
        // The history's `time_utc` (pipe writes only UTC timestamps).
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let us = get!(TimestampMicrosecondArray);
            let text = crate::history::time::format_utc(us);
            if full {
                format!(
                    "{}.{:06}Z",
                    text.replace(' ', "T"),
                    us.rem_euclid(1_000_000)
                )
            } else {
                text
            }
        }
        other => format!("<{other}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::TableBuilder;

    #[test]
    fn the_table_is_aligned_and_rounded_and_files_keep_full_precision() {
        let batch = TableBuilder::new()
            .utf8("dimension", &["timing", "pace"])
            .f64_opt("r2", vec![Some(0.123456789), None])
            .f64("p", vec![1.25e-7, 0.5])
            .batch()
            .unwrap();
        let mut out = Vec::new();
        print_table(&batch, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "dimension      r2         p\n\
             ---------  ------  --------\n\
             timing     0.1235  1.250e-7\n\
             pace         null    0.5000\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("x.csv");
        write(&batch, &csv).unwrap();
        assert_eq!(
            std::fs::read_to_string(&csv).unwrap(),
            "dimension,r2,p\ntiming,0.123456789,1.25e-7\npace,,0.5\n"
        );
        let err = write(&batch, &dir.path().join("x.json")).unwrap_err();
        assert!(
            err.to_string().contains("must end in .parquet or .csv"),
            "{err}"
        );
    }
}
