//! [`Rnn`] (tanh), [`Gru`] and [`Lstm`] layers (one layer, one direction, batch first),
//! unrolled over a fixed number of steps; [`crate::layers::Recurrent`] stacks them.

use crate::init::Initializer;
use crate::params::Params;
use adjoint_ir::Tensor;

/// The hidden states of an unrolled recurrent layer.
#[derive(Clone, Copy, Debug)]
pub struct Sequence<'b> {
    /// The hidden state after every step, `[N, T, hidden]`.
    pub outputs: Tensor<'b>,
    /// The hidden state after the last step, `[N, hidden]`.
    pub last: Tensor<'b>,
}

/// `U(-1/sqrt(hidden), 1/sqrt(hidden))`, PyTorch's initialization of recurrent layers.
fn recurrent_init(hidden: usize) -> Initializer {
    let a = 1.0 / (hidden as f64).sqrt();
    Initializer::Uniform { low: -a, high: a }
}

/// Unrolls `cell` over the steps of `x` `[N, T, input]` from `state0`, after projecting every
/// step's input at once with `w_in` (one large matrix product instead of `T` small ones).
/// With `reverse` the steps run from `T - 1` down to 0 (a bidirectional layer's backward
/// direction); the outputs stay at their time index either way. `hidden_of` picks the hidden
/// state `[N, hidden]` out of a cell state. Returns the hidden states `[N, T, hidden]` and the
/// final state.
#[track_caller]
fn unroll<'b, S: Copy>(
    x: Tensor<'b>,
    w_in: Tensor<'b>,
    state0: S,
    reverse: bool,
    hidden_of: impl Fn(S) -> Tensor<'b>,
    mut cell: impl FnMut(Tensor<'b>, S) -> S,
) -> (Tensor<'b>, S) {
    let s = x.shape();
    let input = w_in.shape().dim(0);
    assert!(
        s.rank() == 3 && s.dim(2) == input && s.dim(1) > 0,
        "a recurrent layer of input size {input} expects [N, T, {input}] with T >= 1, got {}",
        x.ty()
    );
    let (n, steps) = (s.dim(0), s.dim(1));
    let projected = x.matmul(w_in);
    let width = projected.shape().dim(2);
    let mut state = state0;
    let mut outputs = vec![None; steps];
    let order: Vec<usize> = if reverse {
        (0..steps).rev().collect()
    } else {
        (0..steps).collect()
    };
    for t in order {
        let x_t = projected.slice(1, t, t + 1, 1).reshape([n, width]);
        state = cell(x_t, state);
        outputs[t] = Some(hidden_of(state).unsqueeze(1));
    }
    let outputs: Vec<Tensor<'b>> = outputs.into_iter().flatten().collect();
    (x.builder().concat(&outputs, 1), state)
}

/// Asserts that the state `h` fits `[N, hidden]` for the batch of `x` `[N, T, input]`.
#[track_caller]
fn check_state(x: Tensor<'_>, h: Tensor<'_>, hidden: usize, what: &str) {
    let n = x.shape().dims().first().copied().unwrap_or(0);
    assert!(
        h.shape().dims() == [n, hidden],
        "initial {what} {} does not fit [{n}, {hidden}]",
        h.ty(),
    );
}

/// An Elman RNN with tanh: `h_t = tanh(x_t · w_ih + h_{t-1} · w_hh + bias)`.
///
/// Declares `<name>.w_ih` `[input, hidden]`, `<name>.w_hh` `[hidden, hidden]` and
/// `<name>.bias` `[hidden]`, all `U(-1/sqrt(hidden), 1/sqrt(hidden))`.
///
/// ```
/// use adjoint_ir::{Builder, DType};
/// use adjoint_nn::layers::Rnn;
/// use adjoint_nn::Params;
///
/// let b = Builder::new("rnn");
/// let mut params = Params::new(&b, 0);
/// let x = b.input("x", DType::F32, [4, 6, 3]); // 4 sequences of 6 steps of 3 features
/// let rnn = Rnn::new(&mut params, "rnn", 3, 5);
/// let seq = rnn.forward(x);
/// assert_eq!(seq.outputs.shape().dims(), &[4, 6, 5]);
/// assert_eq!(seq.last.shape().dims(), &[4, 5]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Rnn<'b> {
    /// Input weights `[input, hidden]`.
    pub w_ih: Tensor<'b>,
    /// Recurrent weights `[hidden, hidden]`.
    pub w_hh: Tensor<'b>,
    /// Bias `[hidden]`.
    pub bias: Tensor<'b>,
}

impl<'b> Rnn<'b> {
    /// Declares an RNN `name` from `input` features to a `hidden` state.
    #[track_caller]
    pub fn new(params: &mut Params<'b>, name: &str, input: usize, hidden: usize) -> Rnn<'b> {
        let init = recurrent_init(hidden);
        params.scope(name, |p| Rnn {
            w_ih: p.get("w_ih", &[input, hidden], init),
            w_hh: p.get("w_hh", &[hidden, hidden], init),
            bias: p.get("bias", &[hidden], init),
        })
    }

    /// One step: the next state from the input `x_t` `[N, input]` and the state `h` `[N, hidden]`.
    #[track_caller]
    pub fn step(&self, x_t: Tensor<'b>, h: Tensor<'b>) -> Tensor<'b> {
        (x_t.matmul(self.w_ih) + h.matmul(self.w_hh) + self.bias).tanh()
    }

    /// Unrolled over `x` `[N, T, input]` from a zero state.
    #[track_caller]
    pub fn forward(&self, x: Tensor<'b>) -> Sequence<'b> {
        let h0 = zero_state(x, self.w_hh);
        self.forward_from(x, h0)
    }

    /// Unrolled over `x` `[N, T, input]` from the state `h0` `[N, hidden]`.
    #[track_caller]
    pub fn forward_from(&self, x: Tensor<'b>, h0: Tensor<'b>) -> Sequence<'b> {
        self.run(x, h0, false)
    }

    /// Unrolled over `x` from `h0`, backwards in time when `reverse`.
    #[track_caller]
    pub(crate) fn run(&self, x: Tensor<'b>, h0: Tensor<'b>, reverse: bool) -> Sequence<'b> {
        check_state(x, h0, self.w_hh.shape().dim(0), "state");
        let (w_hh, bias) = (self.w_hh, self.bias);
        let (outputs, last) = unroll(
            x,
            self.w_ih,
            h0,
            reverse,
            |h| h,
            |x_t, h| (x_t + h.matmul(w_hh) + bias).tanh(),
        );
        Sequence { outputs, last }
    }
}

/// A GRU (PyTorch's formulation): with `σ` the sigmoid,
/// `r = σ(x W_r + b_ir + h U_r + b_hr)`, `z = σ(x W_z + b_iz + h U_z + b_hz)`,
/// `n = tanh(x W_n + b_in + r ⊙ (h U_n + b_hn))`, `h' = (1 - z) ⊙ n + z ⊙ h`.
///
/// Declares `<name>.w_ih` `[input, 3·hidden]`, `<name>.w_hh` `[hidden, 3·hidden]`, `<name>.b_ih`
/// and `<name>.b_hh` `[3·hidden]` (gates in the order r, z, n), all
/// `U(-1/sqrt(hidden), 1/sqrt(hidden))`.
///
/// ```
/// use adjoint_ir::{Builder, DType};
/// use adjoint_nn::layers::Gru;
/// use adjoint_nn::Params;
///
/// let b = Builder::new("gru");
/// let mut params = Params::new(&b, 0);
/// let x = b.input("x", DType::F32, [4, 6, 3]);
/// let gru = Gru::new(&mut params, "gru", 3, 5);
/// assert_eq!(gru.forward(x).last.shape().dims(), &[4, 5]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Gru<'b> {
    /// Input weights of the r, z and n gates, `[input, 3·hidden]`.
    pub w_ih: Tensor<'b>,
    /// Recurrent weights of the r, z and n gates, `[hidden, 3·hidden]`.
    pub w_hh: Tensor<'b>,
    /// Input biases, `[3·hidden]`.
    pub b_ih: Tensor<'b>,
    /// Recurrent biases, `[3·hidden]`.
    pub b_hh: Tensor<'b>,
}

impl<'b> Gru<'b> {
    /// Declares a GRU `name` from `input` features to a `hidden` state.
    #[track_caller]
    pub fn new(params: &mut Params<'b>, name: &str, input: usize, hidden: usize) -> Gru<'b> {
        let init = recurrent_init(hidden);
        params.scope(name, |p| Gru {
            w_ih: p.get("w_ih", &[input, 3 * hidden], init),
            w_hh: p.get("w_hh", &[hidden, 3 * hidden], init),
            b_ih: p.get("b_ih", &[3 * hidden], init),
            b_hh: p.get("b_hh", &[3 * hidden], init),
        })
    }

    /// One step: the next state from the input `x_t` `[N, input]` and the state `h` `[N, hidden]`.
    #[track_caller]
    pub fn step(&self, x_t: Tensor<'b>, h: Tensor<'b>) -> Tensor<'b> {
        self.cell(x_t.matmul(self.w_ih), h)
    }

    /// Unrolled over `x` `[N, T, input]` from a zero state.
    #[track_caller]
    pub fn forward(&self, x: Tensor<'b>) -> Sequence<'b> {
        let h0 = zero_state(x, self.w_hh);
        self.forward_from(x, h0)
    }

    /// Unrolled over `x` `[N, T, input]` from the state `h0` `[N, hidden]`.
    #[track_caller]
    pub fn forward_from(&self, x: Tensor<'b>, h0: Tensor<'b>) -> Sequence<'b> {
        self.run(x, h0, false)
    }

    /// Unrolled over `x` from `h0`, backwards in time when `reverse`.
    #[track_caller]
    pub(crate) fn run(&self, x: Tensor<'b>, h0: Tensor<'b>, reverse: bool) -> Sequence<'b> {
        check_state(x, h0, self.w_hh.shape().dim(0), "state");
        let (outputs, last) = unroll(
            x,
            self.w_ih,
            h0,
            reverse,
            |h| h,
            |x_proj, h| self.cell(x_proj, h),
        );
        Sequence { outputs, last }
    }

    /// The update from the projected input `x W` `[N, 3·hidden]` (without bias) and `h`.
    #[track_caller]
    fn cell(&self, x_proj: Tensor<'b>, h: Tensor<'b>) -> Tensor<'b> {
        let hidden = self.w_hh.shape().dim(0);
        let gi = x_proj + self.b_ih;
        let gh = h.matmul(self.w_hh) + self.b_hh;
        let gate = |t: Tensor<'b>, k: usize| t.slice(-1, k * hidden, (k + 1) * hidden, 1);
        let r = (gate(gi, 0) + gate(gh, 0)).sigmoid();
        let z = (gate(gi, 1) + gate(gh, 1)).sigmoid();
        let n = (gate(gi, 2) + r * gate(gh, 2)).tanh();
        n + z * (h - n)
    }
}

/// An LSTM (PyTorch's formulation): with `σ` the sigmoid and the gates in PyTorch's order
/// i, f, g, o,
/// `i = σ(x W_i + b_ii + h U_i + b_hi)`, `f = σ(x W_f + b_if + h U_f + b_hf)`,
/// `g = tanh(x W_g + b_ig + h U_g + b_hg)`, `o = σ(x W_o + b_io + h U_o + b_ho)`,
/// `c' = f ⊙ c + i ⊙ g`, `h' = o ⊙ tanh(c')`.
///
/// Declares `<name>.w_ih` `[input, 4·hidden]`, `<name>.w_hh` `[hidden, 4·hidden]`, `<name>.b_ih`
/// and `<name>.b_hh` `[4·hidden]`, all `U(-1/sqrt(hidden), 1/sqrt(hidden))`. The weights are
/// PyTorch's `weight_ih_l0` and `weight_hh_l0` transposed.
///
/// ```
/// use adjoint_ir::{Builder, DType};
/// use adjoint_nn::layers::Lstm;
/// use adjoint_nn::Params;
///
/// let b = Builder::new("lstm");
/// let mut params = Params::new(&b, 0);
/// let x = b.input("x", DType::F32, [4, 6, 3]);
/// let lstm = Lstm::new(&mut params, "lstm", 3, 5);
/// let seq = lstm.forward(x);
/// assert_eq!(seq.outputs.shape().dims(), &[4, 6, 5]);
/// assert_eq!(seq.last_cell.shape().dims(), &[4, 5]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Lstm<'b> {
    /// Input weights of the i, f, g and o gates, `[input, 4·hidden]`.
    pub w_ih: Tensor<'b>,
    /// Recurrent weights of the i, f, g and o gates, `[hidden, 4·hidden]`.
    pub w_hh: Tensor<'b>,
    /// Input biases, `[4·hidden]`.
    pub b_ih: Tensor<'b>,
    /// Recurrent biases, `[4·hidden]`.
    pub b_hh: Tensor<'b>,
}

/// The states of an unrolled [`Lstm`].
#[derive(Clone, Copy, Debug)]
pub struct LstmSequence<'b> {
    /// The hidden state after every step, `[N, T, hidden]`.
    pub outputs: Tensor<'b>,
    /// The hidden state after the last step, `[N, hidden]`.
    pub last: Tensor<'b>,
    /// The cell state after the last step, `[N, hidden]`.
    pub last_cell: Tensor<'b>,
}

impl<'b> Lstm<'b> {
    /// Declares an LSTM `name` from `input` features to a `hidden` state.
    #[track_caller]
    pub fn new(params: &mut Params<'b>, name: &str, input: usize, hidden: usize) -> Lstm<'b> {
        let init = recurrent_init(hidden);
        params.scope(name, |p| Lstm {
            w_ih: p.get("w_ih", &[input, 4 * hidden], init),
            w_hh: p.get("w_hh", &[hidden, 4 * hidden], init),
            b_ih: p.get("b_ih", &[4 * hidden], init),
            b_hh: p.get("b_hh", &[4 * hidden], init),
        })
    }

    /// One step: the next hidden and cell states from the input `x_t` `[N, input]`, the hidden
    /// state `h` and the cell state `c` (both `[N, hidden]`).
    #[track_caller]
    pub fn step(&self, x_t: Tensor<'b>, h: Tensor<'b>, c: Tensor<'b>) -> (Tensor<'b>, Tensor<'b>) {
        self.cell(x_t.matmul(self.w_ih), (h, c))
    }

    /// Unrolled over `x` `[N, T, input]` from zero states.
    #[track_caller]
    pub fn forward(&self, x: Tensor<'b>) -> LstmSequence<'b> {
        let h0 = zero_state(x, self.w_hh);
        self.forward_from(x, h0, h0)
    }

    /// Unrolled over `x` `[N, T, input]` from the hidden state `h0` and the cell state `c0`
    /// (both `[N, hidden]`).
    #[track_caller]
    pub fn forward_from(&self, x: Tensor<'b>, h0: Tensor<'b>, c0: Tensor<'b>) -> LstmSequence<'b> {
        self.run(x, h0, c0, false)
    }

    /// Unrolled over `x` from `h0` and `c0`, backwards in time when `reverse`.
    #[track_caller]
    pub(crate) fn run(
        &self,
        x: Tensor<'b>,
        h0: Tensor<'b>,
        c0: Tensor<'b>,
        reverse: bool,
    ) -> LstmSequence<'b> {
        let hidden = self.w_hh.shape().dim(0);
        check_state(x, h0, hidden, "hidden state");
        check_state(x, c0, hidden, "cell state");
        let (outputs, (last, last_cell)) = unroll(
            x,
            self.w_ih,
            (h0, c0),
            reverse,
            |(h, _)| h,
            |x_proj, state| self.cell(x_proj, state),
        );
        LstmSequence {
            outputs,
            last,
            last_cell,
        }
    }

    /// The update from the projected input `x W` `[N, 4·hidden]` (without bias) and `(h, c)`.
    #[track_caller]
    fn cell(
        &self,
        x_proj: Tensor<'b>,
        (h, c): (Tensor<'b>, Tensor<'b>),
    ) -> (Tensor<'b>, Tensor<'b>) {
        let hidden = self.w_hh.shape().dim(0);
        let gates = x_proj + self.b_ih + h.matmul(self.w_hh) + self.b_hh;
        let gate = |k: usize| gates.slice(-1, k * hidden, (k + 1) * hidden, 1);
        let (i, f) = (gate(0).sigmoid(), gate(1).sigmoid());
        let (g, o) = (gate(2).tanh(), gate(3).sigmoid());
        let c = f * c + i * g;
        (o * c.tanh(), c)
    }
}

/// Zeros `[N, hidden]` for the batch of `x` and the state size of the recurrent weights `w_hh`.
fn zero_state<'b>(x: Tensor<'b>, w_hh: Tensor<'b>) -> Tensor<'b> {
    let n = x.shape().dims().first().copied().unwrap_or(0);
    x.builder().zeros(x.dtype(), [n, w_hh.shape().dim(0)])
}
