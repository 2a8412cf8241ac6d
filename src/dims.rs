//! The 19 PercePiano dimensions and the two ways of grouping them.

pub const N_DIMS: usize = 19;

/// Canonical order: the order of the values in PercePiano's label arrays.
pub const DIMENSIONS: [&str; N_DIMS] = [
    "timing",
    "articulation_length",
    "articulation_touch",
    "pedal_amount",
    "pedal_clarity",
    "timbre_variety",
    "timbre_depth",
    "timbre_brightness",
    "timbre_loudness",
    "dynamic_sophistication",
    "dynamic_range",
    "pace",
    "space",
    "balance",
    "drama",
    "mood_valence",
    "mood_energy",
    "mood_imagination",
    "interpretation",
];

/// The study's short names that differ from ours.
const ALIASES: [(&str, &str); 2] = [
    ("tempo", "pace"),
    ("sophistication", "dynamic_sophistication"),
];

/// Index of a dimension by canonical name or study alias.
pub fn index_of(name: &str) -> Option<usize> {
    let name = ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, canon)| canon);
    DIMENSIONS.iter().position(|d| *d == name)
}

pub type Grouping = [(&'static str, &'static [&'static str])];

/// The 7 categories of the study's tables (this mapping reproduces its category averages).
pub const STUDY_CATEGORIES: &Grouping = &[
    ("Timing", &["timing", "pace"]),
    (
        "Articulation",
        &["articulation_length", "articulation_touch"],
    ),
    ("Pedal", &["pedal_amount", "pedal_clarity"]),
    (
        "Timbre",
        &[
            "timbre_variety",
            "timbre_depth",
            "timbre_brightness",
            "timbre_loudness",
        ],
    ),
    ("Dynamics", &["dynamic_range"]),
    (
        "Musical",
        &[
            "space",
            "balance",
            "drama",
            "dynamic_sophistication",
            "interpretation",
        ],
    ),
    ("Mood", &["mood_valence", "mood_energy", "mood_imagination"]),
];

/// PercePiano's own questionnaire sections (dynamic_sophistication under Dynamics).
pub const PERCEPIANO_CATEGORIES: &Grouping = &[
    ("Timing", &["timing"]),
    (
        "Articulation",
        &["articulation_length", "articulation_touch"],
    ),
    ("Pedal", &["pedal_amount", "pedal_clarity"]),
    (
        "Timbre",
        &[
            "timbre_variety",
            "timbre_depth",
            "timbre_brightness",
            "timbre_loudness",
        ],
    ),
    ("Dynamics", &["dynamic_sophistication", "dynamic_range"]),
    ("Music making", &["pace", "space", "balance", "drama"]),
    ("Mood", &["mood_valence", "mood_energy", "mood_imagination"]),
    ("Interpretation", &["interpretation"]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_map_to_canonical_indices() {
        assert_eq!(index_of("tempo"), Some(11));
        assert_eq!(index_of("pace"), Some(11));
        assert_eq!(index_of("sophistication"), Some(9));
        assert_eq!(index_of("dynamic_range"), Some(10));
        assert_eq!(index_of("loudness"), None);
    }

    #[test]
    fn each_grouping_covers_every_dimension_exactly_once() {
        for grouping in [STUDY_CATEGORIES, PERCEPIANO_CATEGORIES] {
            let mut seen: Vec<usize> = grouping
                .iter()
                .flat_map(|(_, ds)| ds.iter().map(|d| index_of(d).unwrap()))
                .collect();
            seen.sort();
            assert_eq!(seen, (0..N_DIMS).collect::<Vec<_>>());
        }
        assert_eq!(STUDY_CATEGORIES.len(), 7);
    }
}
