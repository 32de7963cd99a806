//! [`Recurrent`]: stacked (multi-layer), optionally bidirectional and sequence-first RNN, GRU
//! and LSTM layers, PyTorch's `nn.RNN` / `nn.GRU` / `nn.LSTM` options.

use super::rnn::{Gru, Lstm, Rnn};
use super::Dropout;
use crate::params::Params;
use adjoint_ir::Tensor;

/// Which recurrent cell a [`Recurrent`] stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    /// Elman RNN with tanh ([`Rnn`]).
    Rnn,
    /// [`Gru`], gates r, z, n.
    Gru,
    /// [`Lstm`], gates i, f, g, o.
    Lstm,
}

/// The options of a [`Recurrent`] layer, PyTorch's `num_layers`, `bidirectional`,
/// `batch_first` (inverted: `seq_first`) and `dropout`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecurrentOptions {
    /// Number of stacked layers (at least 1); layer `k > 0` reads the outputs of layer `k - 1`.
    pub layers: usize,
    /// Whether every layer also runs backwards in time, its outputs concatenated after the
    /// forward direction's on the feature axis.
    pub bidirectional: bool,
    /// Whether inputs and outputs are `[T, N, features]` (PyTorch's default) instead of
    /// `[N, T, features]`.
    pub seq_first: bool,
    /// Probability of dropping an element of every layer's outputs but the last one's, in
    /// training ([`Recurrent::forward_train`]).
    pub dropout: f64,
}

impl Default for RecurrentOptions {
    /// One layer, one direction, batch first, no dropout.
    fn default() -> RecurrentOptions {
        RecurrentOptions {
            layers: 1,
            bidirectional: false,
            seq_first: false,
            dropout: 0.0,
        }
    }
}

/// One layer and direction of a [`Recurrent`].
#[derive(Clone, Copy, Debug)]
enum Cell<'b> {
    Rnn(Rnn<'b>),
    Gru(Gru<'b>),
    Lstm(Lstm<'b>),
}

impl<'b> Cell<'b> {
    /// Runs the cell over `x` `[N, T, input]` from `(h0, c0)`: the outputs `[N, T, hidden]`, the
    /// last hidden state and, for an LSTM, the last cell state.
    #[track_caller]
    fn run(
        &self,
        x: Tensor<'b>,
        h0: Tensor<'b>,
        c0: Tensor<'b>,
        reverse: bool,
    ) -> (Tensor<'b>, Tensor<'b>, Option<Tensor<'b>>) {
        match self {
            Cell::Rnn(c) => {
                let s = c.run(x, h0, reverse);
                (s.outputs, s.last, None)
            }
            Cell::Gru(c) => {
                let s = c.run(x, h0, reverse);
                (s.outputs, s.last, None)
            }
            Cell::Lstm(c) => {
                let s = c.run(x, h0, c0, reverse);
                (s.outputs, s.last, Some(s.last_cell))
            }
        }
    }

    /// Its recurrent weights, which give the state size.
    fn w_hh(&self) -> Tensor<'b> {
        match self {
            Cell::Rnn(c) => c.w_hh,
            Cell::Gru(c) => c.w_hh,
            Cell::Lstm(c) => c.w_hh,
        }
    }
}

/// The result of a [`Recurrent`] layer.
#[derive(Clone, Copy, Debug)]
pub struct RecurrentOutput<'b> {
    /// The last layer's hidden states at every step, `[N, T, D·hidden]` (`[T, N, D·hidden]`
    /// when sequence-first), `D` = 2 when bidirectional, forward direction first.
    pub outputs: Tensor<'b>,
    /// The final hidden state of every layer and direction, `[layers·D, N, hidden]` in
    /// PyTorch's `h_n` order (layer-major, forward before backward). The backward direction's
    /// final state is the one after step 0.
    pub h_n: Tensor<'b>,
    /// For an LSTM, the final cell states, laid out like `h_n` (PyTorch's `c_n`).
    pub c_n: Option<Tensor<'b>>,
}

/// Stacked, optionally bidirectional RNN, GRU or LSTM layers.
///
/// Layer `k`, direction `d` declares the parameters of its single-layer cell ([`Rnn`], [`Gru`]
/// or [`Lstm`]) under `<name>.l<k>` (forward) and `<name>.l<k>_reverse` (backward), mirroring
/// PyTorch's `weight_ih_l<k>` / `weight_ih_l<k>_reverse` suffixes. Layer 0 reads `input`
/// features, later layers `D·hidden`. With `dropout`, [`Recurrent::forward_train`] drops
/// elements of the outputs of every layer but the last (masks `<name>.l<k>.dropout.mask`,
/// random inputs, see [`Dropout`]), as PyTorch does.
///
/// ```
/// use adjoint_ir::{Builder, DType};
/// use adjoint_nn::layers::{CellKind, Recurrent, RecurrentOptions};
/// use adjoint_nn::Params;
///
/// let b = Builder::new("bilstm");
/// let mut params = Params::new(&b, 0);
/// let x = b.input("x", DType::F32, [6, 4, 3]); // 6 steps of 4 sequences of 3 features
/// let options = RecurrentOptions { layers: 2, bidirectional: true, seq_first: true, dropout: 0.1 };
/// let lstm = Recurrent::new(&mut params, "lstm", CellKind::Lstm, 3, 5, options);
/// let out = lstm.forward(x);
/// assert_eq!(out.outputs.shape().dims(), &[6, 4, 10]);
/// assert_eq!(out.h_n.shape().dims(), &[4, 4, 5]);
/// assert_eq!(out.c_n.unwrap().shape().dims(), &[4, 4, 5]);
/// assert_eq!(params.trainable()[4], "lstm.l0_reverse.w_ih");
/// ```
#[derive(Clone, Debug)]
pub struct Recurrent<'b> {
    /// The cell kind.
    pub kind: CellKind,
    /// The shape options.
    pub options: RecurrentOptions,
    /// One entry per layer, each with one cell per direction (forward first).
    cells: Vec<Vec<Cell<'b>>>,
    /// The full name the layer was declared under.
    name: String,
}

impl<'b> Recurrent<'b> {
    /// Declares a recurrent layer `name` of `kind` from `input` features to a `hidden` state.
    /// Panics at the caller when `options.layers` is 0.
    #[track_caller]
    pub fn new(
        params: &mut Params<'b>,
        name: &str,
        kind: CellKind,
        input: usize,
        hidden: usize,
        options: RecurrentOptions,
    ) -> Recurrent<'b> {
        assert!(
            options.layers >= 1,
            "a recurrent layer needs at least one layer"
        );
        assert!(
            (0.0..1.0).contains(&options.dropout),
            "recurrent dropout must be in [0, 1), got {}",
            options.dropout
        );
        let full_name = params.full_name(name);
        let directions = if options.bidirectional { 2 } else { 1 };
        let cells = params.scope(name, |p| {
            (0..options.layers)
                .map(|k| {
                    let width = if k == 0 { input } else { directions * hidden };
                    (0..directions)
                        .map(|d| {
                            let scope = if d == 0 {
                                format!("l{k}")
                            } else {
                                format!("l{k}_reverse")
                            };
                            match kind {
                                CellKind::Rnn => Cell::Rnn(Rnn::new(p, &scope, width, hidden)),
                                CellKind::Gru => Cell::Gru(Gru::new(p, &scope, width, hidden)),
                                CellKind::Lstm => Cell::Lstm(Lstm::new(p, &scope, width, hidden)),
                            }
                        })
                        .collect()
                })
                .collect()
        });
        Recurrent {
            kind,
            options,
            cells,
            name: full_name,
        }
    }

    /// The state size.
    pub fn hidden(&self) -> usize {
        self.cells[0][0].w_hh().shape().dim(0)
    }

    /// Number of directions, 1 or 2.
    pub fn directions(&self) -> usize {
        self.cells[0].len()
    }

    /// Runs over `x` (`[N, T, input]`, or `[T, N, input]` when sequence-first) from zero
    /// states, without dropout (the evaluation graph).
    #[track_caller]
    pub fn forward(&self, x: Tensor<'b>) -> RecurrentOutput<'b> {
        self.forward_from(x, None, None)
    }

    /// Training mode: [`Recurrent::forward_from`] with dropout between layers, its masks
    /// declared in `params` (when the dropout probability is above 0 and there are several
    /// layers). `params` must be at the root scope (the mask names are full names).
    #[track_caller]
    pub fn forward_train(
        &self,
        params: &mut Params<'b>,
        x: Tensor<'b>,
        h0: Option<Tensor<'b>>,
        c0: Option<Tensor<'b>>,
    ) -> RecurrentOutput<'b> {
        self.run(x, h0, c0, Some(params))
    }

    /// Runs over `x` from the initial hidden states `h0` and (LSTM) cell states `c0`, each
    /// `[layers·D, N, hidden]` like [`RecurrentOutput::h_n`]; `None` means zeros. Panics at the
    /// caller on a shape mismatch, or when `c0` is given to a layer that is not an LSTM.
    #[track_caller]
    pub fn forward_from(
        &self,
        x: Tensor<'b>,
        h0: Option<Tensor<'b>>,
        c0: Option<Tensor<'b>>,
    ) -> RecurrentOutput<'b> {
        self.run(x, h0, c0, None)
    }

    /// The layers over `x`, with dropout between them when `params` is given.
    #[track_caller]
    fn run(
        &self,
        x: Tensor<'b>,
        h0: Option<Tensor<'b>>,
        c0: Option<Tensor<'b>>,
        mut params: Option<&mut Params<'b>>,
    ) -> RecurrentOutput<'b> {
        assert!(
            x.rank() == 3,
            "a recurrent layer expects a rank-3 input, got {}",
            x.ty()
        );
        assert!(
            c0.is_none() || self.kind == CellKind::Lstm,
            "only an LSTM has a cell state (c0)"
        );
        let seq_first = self.options.seq_first;
        let mut layer_input = if seq_first { x.transpose(0, 1) } else { x };
        let (hidden, directions) = (self.hidden(), self.directions());
        let n = layer_input.shape().dim(0);
        let stacked = self.cells.len() * directions;
        let initial = |t: Option<Tensor<'b>>, what: &str, i: usize| match t {
            None => x.builder().zeros(x.dtype(), [n, hidden]),
            Some(t) => {
                assert!(
                    t.shape().dims() == [stacked, n, hidden],
                    "initial {what} {} does not fit [{stacked}, {n}, {hidden}]",
                    t.ty()
                );
                t.slice(0, i, i + 1, 1).reshape([n, hidden])
            }
        };
        let (mut h_n, mut c_n) = (Vec::new(), Vec::new());
        for (k, layer) in self.cells.iter().enumerate() {
            if k > 0 && self.options.dropout > 0.0 {
                if let Some(p) = params.as_deref_mut() {
                    let name = format!("{}.l{}.dropout", self.name, k - 1);
                    layer_input =
                        Dropout::new(&name, self.options.dropout).forward_train(p, layer_input);
                }
            }
            let mut outs = Vec::with_capacity(directions);
            for (d, cell) in layer.iter().enumerate() {
                let i = h_n.len();
                let h = initial(h0, "h0", i);
                let c = initial(c0, "c0", i);
                let (out, last, last_cell) = cell.run(layer_input, h, c, d == 1);
                outs.push(out);
                h_n.push(last.unsqueeze(0));
                c_n.extend(last_cell.map(|c| c.unsqueeze(0)));
            }
            layer_input = if outs.len() == 1 {
                outs[0]
            } else {
                x.builder().concat(&outs, 2)
            };
        }
        let b = x.builder();
        RecurrentOutput {
            outputs: if seq_first {
                layer_input.transpose(0, 1)
            } else {
                layer_input
            },
            h_n: b.concat(&h_n, 0),
            c_n: (!c_n.is_empty()).then(|| b.concat(&c_n, 0)),
        }
    }
}
