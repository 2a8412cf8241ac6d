//! Which hidden states make up a feature set, and how they are combined per frame.
//!
//! Indexing follows SPEC §1.3 item 7: `hidden_states[0]` is the pre-transformer
//! embedding and `hidden_states[i]` the output of block `i`, so `"7-12"` means the
//! mean of `hidden_states[7..=12]`.
//!
//! Spellings (pipeline.toml): `"12"` or `12` (one state), `"7-12"` (inclusive range,
//! averaged), `"6,9,12"` or `[6, 9, 12]` (concatenated in the given order), `"all"`
//! (every state averaged), `"all-concat"` (every state concatenated, 0 first).

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

use crate::encoder::EncoderOutput;

/// How the hidden states of one clip become one `[frames, D]` sequence.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "LayerRepr", into = "String")]
pub enum LayerSelection {
    /// `hidden_states[i]` alone: D = hidden.
    Single(usize),
    /// Element-wise mean of `hidden_states[start..=end]`: D = hidden.
    MeanRange { start: usize, end: usize },
    /// `hidden_states[i]` for each listed `i`, concatenated per frame in list order: D = hidden · len.
    Concat(Vec<usize>),
    /// Mean of every hidden state (0 included): D = hidden.
    MeanAll,
    /// Every hidden state concatenated, 0 first: D = hidden · n_states.
    ConcatAll,
}

/// What TOML may hold: an integer, an array of integers, or a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum LayerRepr {
    One(usize),
    List(Vec<usize>),
    Text(String),
}

impl TryFrom<LayerRepr> for LayerSelection {
    type Error = anyhow::Error;
    fn try_from(r: LayerRepr) -> Result<Self> {
        match r {
            LayerRepr::One(i) => Ok(Self::Single(i)),
            LayerRepr::List(v) => Self::concat(v),
            LayerRepr::Text(s) => s.parse(),
        }
    }
}

impl From<LayerSelection> for String {
    fn from(l: LayerSelection) -> String {
        l.to_string()
    }
}

impl LayerSelection {
    fn concat(v: Vec<usize>) -> Result<Self> {
        ensure!(
            !v.is_empty(),
            "layers: an empty list selects no hidden state"
        );
        Ok(if v.len() == 1 {
            Self::Single(v[0])
        } else {
            Self::Concat(v)
        })
    }

    /// The hidden-state indices this selection reads, in combination order
    /// (what to ask the encoder to download). Errors if any is out of range.
    pub fn indices(&self, n_states: usize) -> Result<Vec<usize>> {
        self.validate(n_states)?;
        Ok(match self {
            Self::Single(i) => vec![*i],
            Self::MeanRange { start, end } => (*start..=*end).collect(),
            Self::Concat(v) => v.clone(),
            Self::MeanAll | Self::ConcatAll => (0..n_states).collect(),
        })
    }

    /// Check every index against an encoder with `n_states` hidden states (`0..n_states`).
    pub fn validate(&self, n_states: usize) -> Result<()> {
        ensure!(
            n_states > 0,
            "layers {self}: the encoder returned no hidden states"
        );
        let max = match self {
            Self::Single(i) => *i,
            Self::MeanRange { end, .. } => *end,
            Self::Concat(v) => v.iter().copied().max().unwrap_or(0),
            Self::MeanAll | Self::ConcatAll => 0,
        };
        ensure!(
            max < n_states,
            "layers {self}: this encoder has {n_states} hidden states (0..={})",
            n_states - 1
        );
        Ok(())
    }

    /// Per-frame output width for states of width `hidden`.
    pub fn output_dim(&self, hidden: usize, n_states: usize) -> usize {
        match self {
            Self::Single(_) | Self::MeanRange { .. } | Self::MeanAll => hidden,
            Self::Concat(v) => hidden * v.len(),
            Self::ConcatAll => hidden * n_states,
        }
    }

    /// Combine the first `frames` frames of the selected states into `[frames, D]`.
    pub fn select(&self, hs: &HiddenStates<'_>, frames: usize) -> Result<FrameSeq> {
        let idx = self.indices(hs.num_states())?;
        ensure!(
            frames <= hs.frames(),
            "layers {self}: {frames} frames requested, the clip has {}",
            hs.frames()
        );
        let h = hs.hidden();
        let states = idx
            .iter()
            .map(|&i| hs.state(i).map(|s| &s[..frames * h]))
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("layers {self}"))?;
        let mean = matches!(
            self,
            Self::Single(_) | Self::MeanRange { .. } | Self::MeanAll
        );
        let data = if mean {
            crate::ops::mean_of(&states, frames * h)
        } else {
            concat_rows(&states, frames, h)
        };
        let dim = data.len().checked_div(frames).unwrap_or(h * states.len());
        Ok(FrameSeq { frames, dim, data })
    }
}

/// Row `t` of the output = row `t` of each state, in order.
fn concat_rows(states: &[&[f32]], frames: usize, h: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(frames * h * states.len());
    for t in 0..frames {
        for s in states {
            out.extend_from_slice(&s[t * h..(t + 1) * h]);
        }
    }
    out
}

impl FromStr for LayerSelection {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        let num = |x: &str| -> Result<usize> {
            x.trim().parse::<usize>().with_context(|| {
                format!("layers {s:?}: {x:?} is not a hidden-state index (expected e.g. \"12\", \"7-12\", \"6,9,12\", \"all\", \"all-concat\")")
            })
        };
        match t {
            "all" => return Ok(Self::MeanAll),
            "all-concat" => return Ok(Self::ConcatAll),
            "" => bail!(
                "layers: empty selection (expected e.g. \"12\", \"7-12\", \"6,9,12\", \"all\")"
            ),
            _ => {}
        }
        if t.contains(',') {
            return Self::concat(t.split(',').map(num).collect::<Result<_>>()?);
        }
        if let Some((a, b)) = t.split_once('-') {
            let (start, end) = (num(a)?, num(b)?);
            ensure!(
                start <= end,
                "layers {s:?}: range start {start} is after its end {end}"
            );
            return Ok(if start == end {
                Self::Single(start)
            } else {
                Self::MeanRange { start, end }
            });
        }
        Ok(Self::Single(num(t)?))
    }
}

impl fmt::Display for LayerSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Single(i) => write!(f, "{i}"),
            Self::MeanRange { start, end } => write!(f, "{start}-{end}"),
            Self::Concat(v) => {
                let parts: Vec<String> = v.iter().map(usize::to_string).collect();
                write!(f, "{}", parts.join(","))
            }
            Self::MeanAll => write!(f, "all"),
            Self::ConcatAll => write!(f, "all-concat"),
        }
    }
}

/// Borrowed view of one clip's hidden states: each `[frames, hidden]` row-major,
/// `None` where the encoder was not asked to download that index.
#[derive(Clone, Debug)]
pub struct HiddenStates<'a> {
    frames: usize,
    hidden: usize,
    states: Vec<Option<&'a [f32]>>,
}

impl<'a> HiddenStates<'a> {
    /// Wrap states as the encoder returns them; checks every present state's length.
    pub fn new(frames: usize, hidden: usize, states: &'a [Option<Vec<f32>>]) -> Result<Self> {
        let states: Vec<Option<&[f32]>> = states.iter().map(|s| s.as_deref()).collect();
        Self::check(frames, hidden, states)
    }

    /// Wrap a dense list where every state is present.
    pub fn dense(frames: usize, hidden: usize, states: &'a [Vec<f32>]) -> Result<Self> {
        Self::check(
            frames,
            hidden,
            states.iter().map(|s| Some(&s[..])).collect(),
        )
    }

    /// Wrap an encoder output.
    pub fn from_mert(out: &'a EncoderOutput) -> Result<Self> {
        Self::new(out.frames, out.hidden, &out.states)
    }

    fn check(frames: usize, hidden: usize, states: Vec<Option<&'a [f32]>>) -> Result<Self> {
        ensure!(hidden > 0, "hidden states: hidden size is 0");
        for (i, s) in states.iter().enumerate() {
            if let Some(s) = s {
                ensure!(
                    s.len() == frames * hidden,
                    "hidden_states[{i}]: {} values, expected [frames {frames}, hidden {hidden}] = {}",
                    s.len(),
                    frames * hidden
                );
            }
        }
        Ok(Self {
            frames,
            hidden,
            states,
        })
    }

    pub fn frames(&self) -> usize {
        self.frames
    }

    pub fn hidden(&self) -> usize {
        self.hidden
    }

    pub fn num_states(&self) -> usize {
        self.states.len()
    }

    /// `hidden_states[i]`, or an error if it was not downloaded.
    pub fn state(&self, i: usize) -> Result<&'a [f32]> {
        match self.states.get(i) {
            Some(Some(s)) => Ok(s),
            Some(None) => bail!("hidden_states[{i}] was not requested from the encoder"),
            None => bail!(
                "hidden_states[{i}]: the encoder returned {} states",
                self.states.len()
            ),
        }
    }
}

/// A `[frames, dim]` row-major frame sequence (what pooling consumes).
#[derive(Clone, Debug, PartialEq)]
pub struct FrameSeq {
    pub frames: usize,
    pub dim: usize,
    pub data: Vec<f32>,
}

impl FrameSeq {
    pub fn row(&self, t: usize) -> &[f32] {
        &self.data[t * self.dim..(t + 1) * self.dim]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3 states, 2 frames, hidden 2: state i holds values i*10 + (t*2 + c).
    fn states() -> Vec<Vec<f32>> {
        (0..3)
            .map(|i| (0..4).map(|k| (i * 10 + k) as f32).collect())
            .collect()
    }

    #[test]
    fn parses_every_spelling() {
        assert_eq!(
            "12".parse::<LayerSelection>().unwrap(),
            LayerSelection::Single(12)
        );
        assert_eq!(
            " 7-12 ".parse::<LayerSelection>().unwrap(),
            LayerSelection::MeanRange { start: 7, end: 12 }
        );
        assert_eq!(
            "6, 9,12".parse::<LayerSelection>().unwrap(),
            LayerSelection::Concat(vec![6, 9, 12])
        );
        assert_eq!(
            "all".parse::<LayerSelection>().unwrap(),
            LayerSelection::MeanAll
        );
        assert_eq!(
            "all-concat".parse::<LayerSelection>().unwrap(),
            LayerSelection::ConcatAll
        );
        assert_eq!(
            "5-5".parse::<LayerSelection>().unwrap(),
            LayerSelection::Single(5)
        );
        for bad in ["", "x", "12-7", "1,,2", "-3", "7-"] {
            assert!(bad.parse::<LayerSelection>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["12", "7-12", "6,9,12", "all", "all-concat"] {
            assert_eq!(s.parse::<LayerSelection>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn deserializes_from_toml_string_int_and_array() {
        #[derive(Deserialize)]
        struct T {
            a: LayerSelection,
            b: LayerSelection,
            c: LayerSelection,
        }
        let t: T = toml::from_str("a = \"7-12\"\nb = 12\nc = [6, 9]").unwrap();
        assert_eq!(t.a, LayerSelection::MeanRange { start: 7, end: 12 });
        assert_eq!(t.b, LayerSelection::Single(12));
        assert_eq!(t.c, LayerSelection::Concat(vec![6, 9]));
        assert!(toml::from_str::<T>("a = \"7-x\"\nb = 1\nc = 1").is_err());
    }

    #[test]
    fn out_of_range_error_names_selection_and_count() {
        let e = "7-25"
            .parse::<LayerSelection>()
            .unwrap()
            .validate(13)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "layers 7-25: this encoder has 13 hidden states (0..=12)");
        assert!(LayerSelection::Single(12).validate(13).is_ok());
        assert!(LayerSelection::Concat(vec![1, 13]).validate(13).is_err());
    }

    #[test]
    fn range_mean_averages_states_elementwise() {
        let s = states();
        let hs = HiddenStates::dense(2, 2, &s).unwrap();
        let f = LayerSelection::MeanRange { start: 1, end: 2 }
            .select(&hs, 2)
            .unwrap();
        // mean of 10+k and 20+k = 15+k
        assert_eq!(f.data, vec![15.0, 16.0, 17.0, 18.0]);
        assert_eq!((f.frames, f.dim), (2, 2));
        let all = LayerSelection::MeanAll.select(&hs, 2).unwrap();
        assert_eq!(all.data, vec![10.0, 11.0, 12.0, 13.0]);
    }

    #[test]
    fn concat_keeps_list_order_per_frame() {
        let s = states();
        let hs = HiddenStates::dense(2, 2, &s).unwrap();
        let f = LayerSelection::Concat(vec![2, 0]).select(&hs, 2).unwrap();
        assert_eq!(f.dim, 4);
        assert_eq!(f.data, vec![20.0, 21.0, 0.0, 1.0, 22.0, 23.0, 2.0, 3.0]);
        let all = LayerSelection::ConcatAll.select(&hs, 1).unwrap();
        assert_eq!(all.data, vec![0.0, 1.0, 10.0, 11.0, 20.0, 21.0]);
        assert_eq!(LayerSelection::ConcatAll.output_dim(2, 3), 6);
    }

    #[test]
    fn single_takes_one_state_and_truncates_frames() {
        let s = states();
        let hs = HiddenStates::dense(2, 2, &s).unwrap();
        let f = LayerSelection::Single(1).select(&hs, 1).unwrap();
        assert_eq!(f.data, vec![10.0, 11.0]);
        assert_eq!(f.frames, 1);
    }

    #[test]
    fn missing_state_and_bad_length_are_errors() {
        let s = vec![Some(vec![0.0; 4]), None];
        let hs = HiddenStates::new(2, 2, &s).unwrap();
        let e = format!(
            "{:#}",
            LayerSelection::Single(1).select(&hs, 2).unwrap_err()
        );
        assert!(e.contains("hidden_states[1] was not requested"), "{e}");
        let bad = vec![vec![0.0; 3]];
        let e = HiddenStates::dense(2, 2, &bad).unwrap_err().to_string();
        assert!(e.contains("hidden_states[0]: 3 values"), "{e}");
    }
}
