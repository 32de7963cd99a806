//! Layers: builder structs that declare their parameters in a [`Params`](crate::Params) store
//! when created (`new`) and emit their computation when applied (`forward`).
//!
//! Parameter names are the layer's name plus the parameter's role (`fc1.weight`, `fc1.bias`),
//! under the store's current scope, like PyTorch module paths.
//!
//! ```
//! use adjoint_ir::{Builder, DType};
//! use adjoint_nn::layers::{Activation, Linear, Mlp};
//! use adjoint_nn::Params;
//!
//! let b = Builder::new("net");
//! let mut params = Params::new(&b, 0);
//! let x = b.input("x", DType::F32, [8, 4]);
//! let block = Mlp::new(&mut params, "block", 4, 16, 4, Activation::Gelu);
//! let head = Linear::new(&mut params, "head", 4, 3);
//! let logits = head.forward(block.forward(x));
//! assert_eq!(logits.shape().dims(), &[8, 3]);
//! assert_eq!(params.trainable(), ["block.fc1.weight", "block.fc1.bias", "block.fc2.weight",
//!                                 "block.fc2.bias", "head.weight", "head.bias"]);
//! ```

pub mod activation;
pub mod attention;
pub mod batch_norm;
pub mod conv2d;
pub mod dropout;
pub mod embedding;
pub mod layer_norm;
pub mod linear;
pub mod mlp;
pub mod recurrent;
pub mod rnn;

pub use activation::Activation;
pub use attention::{AttentionOptions, MultiHeadAttention, TransformerBlock};
pub use batch_norm::BatchNorm;
pub use conv2d::{
    avg_pool2d, avg_pool2d_with, max_pool2d, max_pool2d_with, Conv2d, Conv2dOptions, Pool2d,
};
pub use dropout::Dropout;
pub use embedding::{Embedding, IdError};
pub use layer_norm::LayerNorm;
pub use linear::{Linear, LinearOptions};
pub use mlp::{residual, Mlp};
pub use recurrent::{CellKind, Recurrent, RecurrentOptions, RecurrentOutput};
pub use rnn::{Gru, Lstm, LstmSequence, Rnn, Sequence};
