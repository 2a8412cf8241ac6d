//! Where polars meets arrow-rs: the only module that converts between a polars
//! `DataFrame` and an arrow-rs table. polars computes the published result
//! tables and answers `pipe query`; every Parquet file is still written and read
//! by arrow-rs ([`crate::table`]), so the files keep their exact schemas
//! (required vs optional columns, `Utf8` strings, key-value metadata) and the
//! artifact hot path has one Arrow stack.
//!
//! Columns are copied value by value through typed iterators: the published
//! tables are small, and no `unsafe` C-interface hand-off is needed.

use anyhow::{Context, Result, bail};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array,
    LargeStringArray, RecordBatch, StringArray, StringViewArray, TimestampMicrosecondArray,
    UInt32Array, UInt64Array,
};
use arrow_schema::{DataType as ArrowType, Field, Schema, TimeUnit as ArrowUnit};
use polars::prelude::{Column, DataFrame, DataType, NamedFrom, Series, TimeUnit, TimeZone};
use std::sync::Arc;

use crate::table::TableBuilder;

/// The column kinds of the published tables: one per [`TableBuilder`] method,
/// so a table built by polars has exactly the schema the builder gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `utf8`, no nulls.
    Utf8,
    /// `utf8`, always nullable.
    Utf8Opt,
    /// `timestamp[us, UTC]`, no nulls.
    TimestampUtc,
    /// `int32`, nullable only if a value is null.
    I32Opt,
    /// `float64`, no nulls.
    F64,
    /// `float64`, always nullable.
    F64Opt,
    /// `float32`, no nulls.
    F32,
    /// `bool`, no nulls.
    Bool,
}

/// A published table's column: its name and kind.
pub type Col = (&'static str, Kind);

/// The columns `columns` of `df`, in that order and of those kinds, as a table.
/// A column that is missing, of another type, or null where its kind forbids
/// nulls is an error naming it (a bug in the table's query, not bad input).
pub fn to_table(df: &DataFrame, columns: &[Col]) -> Result<TableBuilder> {
    let mut t = TableBuilder::new();
    for &(name, kind) in columns {
        let c = df
            .column(name)
            .with_context(|| format!("the query gives no column `{name}`"))?;
        let required = |n: usize| -> Result<()> {
            if n > 0 {
                bail!("column `{name}` ({kind:?}) has {n} null(s)");
            }
            Ok(())
        };
        let cast = |dtype: &DataType| -> Result<Series> {
            let cast = c.as_materialized_series().strict_cast(dtype);
            Context::with_context(cast, || {
                format!("column `{name}` is {}, not {dtype} ({kind:?})", c.dtype())
            })
        };
        t = match kind {
            Kind::Utf8 => {
                let s = cast(&DataType::String)?;
                required(s.null_count())?;
                let v: Vec<&str> = s.str()?.no_null_iter().collect();
                t.utf8(name, &v)
            }
            Kind::Utf8Opt => {
                let s = cast(&DataType::String)?;
                let v: Vec<Option<&str>> = s.str()?.iter().collect();
                t.utf8_opt(name, &v)
            }
            Kind::TimestampUtc => {
                let s = cast(&utc_micros())?;
                required(s.null_count())?;
                t.timestamp_utc(name, s.datetime()?.physical().no_null_iter().collect())
            }
            Kind::I32Opt => t.i32_opt(name, cast(&DataType::Int32)?.i32()?.iter().collect()),
            Kind::F64 => {
                let s = cast(&DataType::Float64)?;
                required(s.null_count())?;
                t.f64(name, s.f64()?.no_null_iter().collect())
            }
            Kind::F64Opt => t.f64_opt(name, cast(&DataType::Float64)?.f64()?.iter().collect()),
            Kind::F32 => {
                let s = cast(&DataType::Float32)?;
                required(s.null_count())?;
                t.f32(name, s.f32()?.no_null_iter().collect())
            }
            Kind::Bool => {
                let s = cast(&DataType::Boolean)?;
                required(s.null_count())?;
                t.bool(name, s.bool()?.no_null_iter().collect())
            }
        };
    }
    Ok(t)
}

/// `datetime[μs, UTC]`: the history's `time_utc`.
fn utc_micros() -> DataType {
    DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
}

/// Any polars result of scalar columns as an arrow-rs batch (for `pipe query
/// --output x.parquet` and for printing); a column is nullable if it has a
/// null. Other types are an error naming the column: cast them in the query.
pub fn to_batch(df: &DataFrame) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(df.width());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(df.width());
    for c in df.columns() {
        let s = c.as_materialized_series();
        let name = s.name().as_str();
        let array: ArrayRef = match s.dtype() {
            DataType::String => Arc::new(StringArray::from_iter(s.str()?.iter())),
            DataType::Boolean => Arc::new(BooleanArray::from_iter(s.bool()?.iter())),
            DataType::Int32 => Arc::new(Int32Array::from_iter(s.i32()?.iter())),
            DataType::Int64 => Arc::new(Int64Array::from_iter(s.i64()?.iter())),
            DataType::UInt32 => Arc::new(UInt32Array::from_iter(s.u32()?.iter())),
            DataType::UInt64 => Arc::new(UInt64Array::from_iter(s.u64()?.iter())),
            DataType::Float32 => Arc::new(Float32Array::from_iter(s.f32()?.iter())),
            DataType::Float64 => Arc::new(Float64Array::from_iter(s.f64()?.iter())),
            DataType::Datetime(_, tz) => {
                let micros = s.cast(&DataType::Datetime(TimeUnit::Microseconds, tz.clone()))?;
                let values = micros.datetime()?.physical().iter().collect::<Vec<_>>();
                let array = TimestampMicrosecondArray::from(values);
                Arc::new(match tz {
                    Some(tz) => array.with_timezone(tz.as_str()),
                    None => array,
                })
            }
            // A literal null column (e.g. `select null as x`).
            DataType::Null => Arc::new(Int32Array::from(vec![None; s.len()])),
            other => bail!(
                "result column `{name}` has type {other}; cast it to a string or number (CAST(x AS VARCHAR))"
            ),
        };
        fields.push(Field::new(
            name,
            array.data_type().clone(),
            array.null_count() > 0,
        ));
        arrays.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    Ok(RecordBatch::try_new_with_options(
        schema,
        arrays,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(df.height())),
    )?)
}

/// An arrow-rs table as a polars frame, without its nested columns (feature
/// vectors, frame sequences): those are left out, and named in the second
/// value. A scalar type polars cannot take here is an error naming the column.
pub fn from_batch(batch: &RecordBatch) -> Result<(DataFrame, Vec<String>)> {
    let mut columns = Vec::with_capacity(batch.num_columns());
    let mut left_out = Vec::new();
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        let name = field.name().as_str().into();
        let any = array.as_any();
        macro_rules! values {
            ($t:ty) => {
                any.downcast_ref::<$t>()
                    .expect("array matches its data type")
                    .iter()
                    .collect::<Vec<_>>()
            };
        }
        let series = match array.data_type() {
            ArrowType::Utf8 => Series::new(name, values!(StringArray)),
            ArrowType::LargeUtf8 => Series::new(name, values!(LargeStringArray)),
            ArrowType::Utf8View => Series::new(name, values!(StringViewArray)),
            ArrowType::Boolean => Series::new(name, values!(BooleanArray)),
            ArrowType::Int32 => Series::new(name, values!(Int32Array)),
            ArrowType::Int64 => Series::new(name, values!(Int64Array)),
            ArrowType::UInt32 => Series::new(name, values!(UInt32Array)),
            ArrowType::UInt64 => Series::new(name, values!(UInt64Array)),
            ArrowType::Float32 => Series::new(name, values!(Float32Array)),
            ArrowType::Float64 => Series::new(name, values!(Float64Array)),
            ArrowType::Timestamp(ArrowUnit::Microsecond, tz) => {
                Series::new(name, values!(TimestampMicrosecondArray)).into_datetime(
                    TimeUnit::Microseconds,
                    TimeZone::opt_try_new(tz.as_deref())?,
                )
            }
            t if t.is_nested() => {
                left_out.push(field.name().clone());
                continue;
            }
            other => bail!(
                "column `{}` has type {other}, which `pipe query` does not read",
                field.name()
            ),
        };
        columns.push(Column::from(series));
    }
    let df = DataFrame::new(batch.num_rows(), columns)?;
    Ok((df, left_out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> DataFrame {
        DataFrame::new_infer_height(vec![
            Column::new("s".into(), ["a", "b", "c"]),
            Column::new("i".into(), [Some(1i32), None, Some(3)]),
            Column::new("x".into(), [0.1f64, -0.0, f64::MAX]),
            Column::new("y".into(), [Some(0.5f64), None, Some(f64::MIN_POSITIVE)]),
            Column::new("f".into(), [1.5f32, 2.5, 3.25]),
            Column::new("b".into(), [true, false, true]),
            Column::new("o".into(), [Some("x"), None, Some("z")]),
            Series::new("t".into(), [0i64, -1, 1_749_651_753_000_001])
                .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
                .into(),
        ])
        .unwrap()
    }

    const COLS: [Col; 8] = [
        ("s", Kind::Utf8),
        ("i", Kind::I32Opt),
        ("x", Kind::F64),
        ("y", Kind::F64Opt),
        ("f", Kind::F32),
        ("b", Kind::Bool),
        ("o", Kind::Utf8Opt),
        ("t", Kind::TimestampUtc),
    ];

    #[test]
    fn a_frame_becomes_the_table_the_builder_would_make() {
        let got = to_table(&frame(), &COLS).unwrap().batch().unwrap();
        let want = TableBuilder::new()
            .utf8("s", &["a", "b", "c"])
            .i32_opt("i", vec![Some(1), None, Some(3)])
            .f64("x", vec![0.1, -0.0, f64::MAX])
            .f64_opt("y", vec![Some(0.5), None, Some(f64::MIN_POSITIVE)])
            .f32("f", vec![1.5, 2.5, 3.25])
            .bool("b", vec![true, false, true])
            .utf8_opt("o", &[Some("x"), None, Some("z")])
            .timestamp_utc("t", vec![0, -1, 1_749_651_753_000_001])
            .batch()
            .unwrap();
        assert_eq!(got, want);
        // And back: the timestamps keep their unit and zone.
        let (df, _) = from_batch(&got).unwrap();
        assert_eq!(df.column("t").unwrap().dtype(), &utc_micros());
        assert_eq!(to_batch(&df).unwrap().column(7), got.column(7));
        // -0.0 keeps its sign bit.
        let x = got
            .column(2)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert!(x.value(1).is_sign_negative());
    }

    #[test]
    fn nulls_where_the_kind_forbids_them_and_missing_columns_are_named() {
        let err = to_table(&frame(), &[("y", Kind::F64)])
            .map(|_| ())
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("column `y` (F64) has 1 null(s)"),
            "{err:#}"
        );
        let err = to_table(&frame(), &[("nope", Kind::Utf8)])
            .map(|_| ())
            .unwrap_err();
        assert!(format!("{err:#}").contains("no column `nope`"), "{err:#}");
        let err = to_table(&frame(), &[("s", Kind::F64)])
            .map(|_| ())
            .unwrap_err();
        assert!(format!("{err:#}").contains("column `s` is str"), "{err:#}");
    }

    #[test]
    fn batches_round_trip_and_nested_columns_are_left_out() {
        let batch = TableBuilder::new()
            .utf8("id", &["a", "b"])
            .i32_opt("fold", vec![Some(0), None])
            .f32_vectors("features", 2, vec![1.0, 2.0, 3.0, 4.0])
            .unwrap()
            .f64("r2", vec![0.25, -1.5])
            .batch()
            .unwrap();
        let (df, left_out) = from_batch(&batch).unwrap();
        assert_eq!(left_out, ["features"]);
        let names: Vec<&str> = df.get_column_names().iter().map(|n| n.as_str()).collect();
        assert_eq!(names, ["id", "fold", "r2"]);
        let back = to_batch(&df).unwrap();
        let want = batch.project(&[0, 1, 3]).unwrap();
        assert_eq!(back.columns(), want.columns());
        // Nullable exactly where a value is null.
        let nullable: Vec<bool> = back
            .schema()
            .fields()
            .iter()
            .map(|f| f.is_nullable())
            .collect();
        assert_eq!(nullable, [false, true, false]);
    }
}
