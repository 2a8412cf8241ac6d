//! What a MuQ pass can hand back besides its hidden states: the front end's
//! and the conv stack's intermediate tensors, for the golden tests.

/// Intermediate tensors of one pass, time-major host copies (for golden tests).
#[derive(Clone, Debug, Default)]
pub struct MuqTrace {
    /// Mel power `[M + 1, n_mels]` (every STFT frame).
    pub mel_power: Vec<f32>,
    /// dB, last frame dropped `[M, n_mels]`.
    pub mel_db: Vec<f32>,
    /// Normalised `[M, n_mels]`: the network's input.
    pub mel_norm: Vec<f32>,
    /// Subsampling conv output `[T·F/4, conv_dim]`, row `t·F/4 + f`.
    pub conv_stack: Vec<f32>,
    /// `hidden_states[0]` `[T, H]`.
    pub subsampled: Vec<f32>,
}
