//! Parquet tables any Arrow tool reads: a small column builder over arrow-rs,
//! written atomically, with key-value metadata both in the Arrow schema and
//! in the Parquet footer.

use anyhow::{Context, Result, bail};
use arrow_array::{
    Array, ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int32Array,
    ListArray, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

#[derive(Default)]
pub struct TableBuilder {
    fields: Vec<Field>,
    columns: Vec<ArrayRef>,
    metadata: HashMap<String, String>,
}

impl TableBuilder {
    pub fn new() -> TableBuilder {
        TableBuilder::default()
    }

    fn push(mut self, name: &str, array: ArrayRef, nullable: bool) -> Self {
        self.fields
            .push(Field::new(name, array.data_type().clone(), nullable));
        self.columns.push(array);
        self
    }

    pub fn utf8<S: AsRef<str>>(self, name: &str, values: &[S]) -> Self {
        let a = StringArray::from_iter_values(values.iter().map(|s| s.as_ref()));
        self.push(name, Arc::new(a), false)
    }

    /// Nullable utf8: `None` where a value is absent (e.g. no git commit).
    pub fn utf8_opt<S: AsRef<str>>(self, name: &str, values: &[Option<S>]) -> Self {
        let a: StringArray = values
            .iter()
            .map(|v| v.as_ref().map(|s| s.as_ref()))
            .collect();
        self.push(name, Arc::new(a), true)
    }

    /// `Timestamp(Microsecond, "UTC")` from microseconds since the Unix epoch.
    pub fn timestamp_utc(self, name: &str, micros: Vec<i64>) -> Self {
        let a = TimestampMicrosecondArray::from(micros).with_timezone("UTC");
        self.push(name, Arc::new(a), false)
    }

    pub fn i32_opt(self, name: &str, values: Vec<Option<i32>>) -> Self {
        let nullable = values.iter().any(|v| v.is_none());
        self.push(name, Arc::new(Int32Array::from(values)), nullable)
    }

    pub fn f64(self, name: &str, values: Vec<f64>) -> Self {
        self.push(name, Arc::new(Float64Array::from(values)), false)
    }

    /// Nullable f64: `None` where a statistic is undefined (or not run).
    pub fn f64_opt(self, name: &str, values: Vec<Option<f64>>) -> Self {
        self.push(name, Arc::new(Float64Array::from(values)), true)
    }

    pub fn f32(self, name: &str, values: Vec<f32>) -> Self {
        self.push(name, Arc::new(Float32Array::from(values)), false)
    }

    pub fn bool(self, name: &str, values: Vec<bool>) -> Self {
        self.push(name, Arc::new(BooleanArray::from(values)), false)
    }

    /// A `FixedSizeList<Float32, dim>` column from row-major values.
    pub fn f32_vectors(self, name: &str, dim: usize, values: Vec<f32>) -> Result<Self> {
        if dim == 0 || !values.len().is_multiple_of(dim) {
            bail!(
                "column `{name}`: {} values do not split into rows of {dim}",
                values.len()
            );
        }
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let a = FixedSizeListArray::try_new(
            item,
            dim as i32,
            Arc::new(Float32Array::from(values)),
            None,
        )?;
        Ok(self.push(name, Arc::new(a), false))
    }

    /// One variable-length sequence of `dim`-wide f32 rows per table row:
    /// `List<FixedSizeList<Float32, dim>>`. `rows[i]` holds row i's frames, flattened.
    pub fn f32_sequences(self, name: &str, dim: usize, rows: &[Vec<f32>]) -> Result<Self> {
        let mut offsets = vec![0i32];
        let mut values = Vec::with_capacity(rows.iter().map(Vec::len).sum());
        for (i, r) in rows.iter().enumerate() {
            if dim == 0 || !r.len().is_multiple_of(dim) {
                bail!(
                    "column `{name}`, row {i}: {} values do not split into frames of {dim}",
                    r.len()
                );
            }
            values.extend_from_slice(r);
            offsets
                .push(i32::try_from(values.len() / dim).context("too many frames for one table")?);
        }
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let frames = FixedSizeListArray::try_new(
            item,
            dim as i32,
            Arc::new(Float32Array::from(values)),
            None,
        )?;
        let frame_field = Arc::new(Field::new("item", frames.data_type().clone(), false));
        let list = ListArray::try_new(
            frame_field,
            OffsetBuffer::new(offsets.into()),
            Arc::new(frames),
            None,
        )?;
        Ok(self.push(name, Arc::new(list), false))
    }

    pub fn meta(mut self, key: &str, value: impl Into<String>) -> Self {
        self.metadata.insert(key.to_string(), value.into());
        self
    }

    pub fn batch(self) -> Result<RecordBatch> {
        let schema = Arc::new(Schema::new_with_metadata(self.fields, self.metadata));
        Ok(RecordBatch::try_new(schema, self.columns)?)
    }

    /// Writes the table to `path` (overwriting it; the caller picks a temporary path
    /// when atomicity matters, as the DAG engine does).
    pub fn write(self, path: &Path) -> Result<()> {
        let batch = self.batch()?;
        write_batch(&batch, path)
    }
}

pub fn write_batch(batch: &RecordBatch, path: &Path) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    write_batch_to(batch, file, &path.display().to_string())
}

/// The Parquet bytes of `batch` (to write atomically with `dag::store::write_atomic`).
pub fn to_bytes(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    write_batch_to(batch, &mut bytes, "a table in memory")?;
    Ok(bytes)
}

/// Writes `batch` as Parquet to `out`, its schema metadata also in the
/// footer; `label` names the destination in errors.
fn write_batch_to<W: std::io::Write + Send>(
    batch: &RecordBatch,
    out: W,
    label: &str,
) -> Result<()> {
    let kv: Vec<KeyValue> = batch
        .schema()
        .metadata()
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(kv))
        .build();
    let mut writer = ArrowWriter::try_new(out, batch.schema(), Some(props))?;
    writer
        .write(batch)
        .with_context(|| format!("writing {label}"))?;
    writer
        .close()
        .with_context(|| format!("finishing {label}"))?;
    Ok(())
}

/// Reads a whole Parquet file as record batches.
pub fn read(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{} is not a readable Parquet file", path.display()))?;
    // Batches come back with a bare schema; give them the file's (with its metadata).
    let schema = builder.schema().clone();
    let batches = builder
        .build()?
        .collect::<std::result::Result<Vec<_>, _>>()
        .with_context(|| format!("reading {}", path.display()))?;
    batches
        .into_iter()
        .map(|b| Ok(b.with_schema(schema.clone())?))
        .collect()
}

/// Reads a whole Parquet file as one record batch (our tables are small).
pub fn read_single(path: &Path) -> Result<RecordBatch> {
    read_columns(path, |_| true)
}

/// The schema (with its metadata) and row count of a Parquet file, from its footer.
pub fn read_schema(path: &Path) -> Result<(Arc<Schema>, usize)> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{} is not a readable Parquet file", path.display()))?;
    let rows = builder.metadata().file_metadata().num_rows() as usize;
    Ok((builder.schema().clone(), rows))
}

/// Like [`read_single`], with only the top-level columns `keep` accepts
/// (the others are not decoded: e.g. feature vectors when only ids are wanted).
pub fn read_columns(path: &Path, keep: impl Fn(&Field) -> bool) -> Result<RecordBatch> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{} is not a readable Parquet file", path.display()))?;
    let rows = builder.metadata().file_metadata().num_rows().max(1) as usize;
    let kept: Vec<usize> = (builder.schema().fields().iter().enumerate())
        .filter(|(_, f)| keep(f))
        .map(|(i, _)| i)
        .collect();
    let schema = Arc::new(builder.schema().project(&kept)?);
    let mask = ProjectionMask::roots(builder.parquet_schema(), kept);
    let mut batches = builder
        .with_projection(mask)
        .with_batch_size(rows)
        .build()?
        .collect::<std::result::Result<Vec<_>, _>>()
        .with_context(|| format!("reading {}", path.display()))?;
    match batches.len() {
        0 => Ok(RecordBatch::new_empty(schema)),
        1 => Ok(batches.remove(0).with_schema(schema)?),
        n => bail!("{}: {n} batches where one was expected", path.display()),
    }
}

/// Writes a copy of the table at `src` to `dest` with `extra` key-value
/// metadata added: how a published table gets the names and descriptions
/// its artifact leaves out (they must not change the artifact's key).
pub fn copy_with_metadata(src: &Path, dest: &Path, extra: &[(&str, String)]) -> Result<()> {
    let batch = read_single(src)?;
    let schema = batch.schema();
    let mut meta = schema.metadata().clone();
    for (k, v) in extra {
        meta.insert(k.to_string(), v.clone());
    }
    let schema = Arc::new(Schema::new_with_metadata(schema.fields().clone(), meta));
    write_batch(&batch.with_schema(schema)?, dest)
}

/// Typed column access for readers of our own tables.
pub fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    let col = batch
        .column_by_name(name)
        .with_context(|| format!("table has no column `{name}`"))?;
    col.as_any().downcast_ref::<T>().with_context(|| {
        format!(
            "column `{name}` has type {}, not the expected one",
            col.data_type()
        )
    })
}

/// A `FixedSizeList<Float32, D>` column (what [`TableBuilder::f32_vectors`]
/// writes) as its width D and its row-major `[rows, D]` values.
pub fn f32_vectors(batch: &RecordBatch, name: &str) -> Result<(usize, Vec<f32>)> {
    let list = column::<FixedSizeListArray>(batch, name)?;
    let dim = list.value_length() as usize;
    let values = list
        .values()
        .as_any()
        .downcast_ref::<Float32Array>()
        .with_context(|| {
            format!(
                "column `{name}` holds {} values, not Float32",
                list.value_type()
            )
        })?;
    Ok((dim, values.values()[..batch.num_rows() * dim].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_types_values_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        TableBuilder::new()
            .utf8("id", &["a", "b"])
            .i32_opt("fold", vec![Some(1), None])
            .f64("x", vec![0.5, 0.25])
            .bool("flag", vec![true, false])
            .f32_vectors("features", 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
            .unwrap()
            .meta("encoder", "mert")
            .write(&path)
            .unwrap();
        let batches = read(&path).unwrap();
        let b = &batches[0];
        assert_eq!(b.num_rows(), 2);
        assert_eq!(column::<StringArray>(b, "id").unwrap().value(1), "b");
        let fold = column::<Int32Array>(b, "fold").unwrap();
        assert_eq!((fold.value(0), fold.is_null(1)), (1, true));
        assert_eq!(column::<Float64Array>(b, "x").unwrap().value(1), 0.25);
        let f = column::<FixedSizeListArray>(b, "features").unwrap();
        assert_eq!(f.value_length(), 3);
        let row1 = f.value(1);
        let row1 = row1.as_any().downcast_ref::<Float32Array>().unwrap();
        assert_eq!(row1.values().to_vec(), vec![4.0, 5.0, 6.0]);
        assert_eq!(
            b.schema().metadata().get("encoder").map(String::as_str),
            Some("mert")
        );
        assert!(column::<Float64Array>(b, "id").is_err());
    }

    #[test]
    fn a_copy_with_metadata_keeps_the_data_and_adds_the_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        TableBuilder::new()
            .utf8("id", &["x", "y"])
            .meta("pipe.dim", "2")
            .write(&a)
            .unwrap();
        copy_with_metadata(&a, &b, &[("pipe.description", "two rows".into())]).unwrap();
        let t = read_single(&b).unwrap();
        assert_eq!(column::<StringArray>(&t, "id").unwrap().value(1), "y");
        let meta = t.schema().metadata().clone();
        assert_eq!(meta["pipe.dim"], "2");
        assert_eq!(meta["pipe.description"], "two rows");
    }

    #[test]
    fn ragged_vectors_are_rejected() {
        assert!(
            TableBuilder::new()
                .f32_vectors("v", 2, vec![1.0, 2.0, 3.0])
                .is_err()
        );
    }
}
