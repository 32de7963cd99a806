//! [`Conv2d`]: 2-D convolution (NCHW) as im2col and one matrix product, and 2-D pooling.

use crate::init::Initializer;
use crate::params::Params;
use adjoint_ir::{DType, Tensor};

/// A 2-D convolution over `[N, C_in, H, W]` inputs (cross-correlation, as in PyTorch), with a
/// kernel `[C_out, C_in, kh, kw]` (He normal), a bias `[C_out]` (zeros), a stride and zero
/// padding on every side.
///
/// The forward pass is im2col: the input is padded, its spatial axes are flattened, and one
/// `gather` with a constant `i32` index (computed here, once, from the sizes) pulls out every
/// receptive field, giving columns `[N, C_in·kh·kw, OH·OW]`; the kernel reshaped to
/// `[C_out, C_in·kh·kw]` times the columns is the output `[N, C_out, OH·OW]`. There is no new
/// primitive: the backward pass is the `gather`'s `scatter_add` and two matrix products, which
/// the JIT fuses and vectorizes like any other graph.
///
/// ```
/// use adjoint_ir::{Builder, DType};
/// use adjoint_nn::layers::Conv2d;
/// use adjoint_nn::Params;
///
/// let b = Builder::new("conv");
/// let mut params = Params::new(&b, 0);
/// let x = b.input("x", DType::F32, [2, 1, 8, 8]);
/// let conv = Conv2d::new(&mut params, "conv1", 1, 4, [3, 3]).with_padding(1);
/// assert_eq!(conv.forward(x).shape().dims(), &[2, 4, 8, 8]);
/// let strided = Conv2d::new(&mut params, "conv2", 4, 6, [2, 2]).with_stride(2);
/// assert_eq!(strided.forward(conv.forward(x)).shape().dims(), &[2, 6, 4, 4]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Conv2d<'b> {
    /// The kernel `[C_out, C_in, kh, kw]`.
    pub kernel: Tensor<'b>,
    /// The bias `[C_out]`.
    pub bias: Tensor<'b>,
    /// Step between receptive fields along both spatial axes: 1.
    pub stride: usize,
    /// Zeros added on each side of both spatial axes: 0.
    pub padding: usize,
}

impl<'b> Conv2d<'b> {
    /// Declares `<name>.kernel` (`[out_channels, in_channels, kh, kw]`) and `<name>.bias`, with
    /// stride 1 and no padding.
    #[track_caller]
    pub fn new(
        params: &mut Params<'b>,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel_size: [usize; 2],
    ) -> Conv2d<'b> {
        let [kh, kw] = kernel_size;
        assert!(
            in_channels > 0 && out_channels > 0 && kh > 0 && kw > 0,
            "convolution sizes must be positive"
        );
        params.scope(name, |p| Conv2d {
            kernel: p.get(
                "kernel",
                &[out_channels, in_channels, kh, kw],
                Initializer::HeNormal,
            ),
            bias: p.get("bias", &[out_channels], Initializer::Zeros),
            stride: 1,
            padding: 0,
        })
    }

    /// The same convolution with another stride (at least 1).
    #[track_caller]
    pub fn with_stride(mut self, stride: usize) -> Conv2d<'b> {
        assert!(stride > 0, "convolution stride must be at least 1");
        self.stride = stride;
        self
    }

    /// The same convolution with `padding` zeros on each side.
    pub fn with_padding(mut self, padding: usize) -> Conv2d<'b> {
        self.padding = padding;
        self
    }

    /// `[C_out, C_in, kh, kw]`.
    fn kernel_dims(&self) -> [usize; 4] {
        let s = self.kernel.shape();
        [s.dim(0), s.dim(1), s.dim(2), s.dim(3)]
    }

    /// The output's spatial size `(OH, OW)` for an input of `height × width`, or `None` when
    /// the padded input is smaller than the kernel.
    pub fn output_size(&self, height: usize, width: usize) -> Option<(usize, usize)> {
        let [_, _, kh, kw] = self.kernel_dims();
        let (hp, wp) = (height + 2 * self.padding, width + 2 * self.padding);
        if hp < kh || wp < kw {
            return None;
        }
        Some(((hp - kh) / self.stride + 1, (wp - kw) / self.stride + 1))
    }

    /// The convolution of `x` `[N, C_in, H, W]`: `[N, C_out, OH, OW]`.
    #[track_caller]
    pub fn forward(&self, x: Tensor<'b>) -> Tensor<'b> {
        let [c_out, c_in, kh, kw] = self.kernel_dims();
        let s = x.shape();
        assert!(
            s.rank() == 4 && s.dim(1) == c_in,
            "a convolution with {c_in} input channels expects [N, {c_in}, H, W], got {}",
            x.ty()
        );
        let (n, h, w) = (s.dim(0), s.dim(2), s.dim(3));
        let Some((oh, ow)) = self.output_size(h, w) else {
            panic!(
                "a {kh}x{kw} kernel does not fit in {} padded by {}",
                x.ty(),
                self.padding
            );
        };
        let p = self.padding;
        let padded = if p > 0 {
            x.pad(&[0, 0, p, p], &[0, 0, p, p])
        } else {
            x
        };
        let (hp, wp) = (h + 2 * p, w + 2 * p);
        let index = im2col_index(wp, [kh, kw], self.stride, [oh, ow]);
        let idx = x.builder().constant(DType::I32, [index.len()], &index);
        let columns =
            padded
                .reshape([n, c_in, hp * wp])
                .gather(idx, 2)
                .reshape([n, c_in * kh * kw, oh * ow]);
        let out = self.kernel.reshape([c_out, c_in * kh * kw]).matmul(columns);
        out.reshape([n, c_out, oh, ow]) + self.bias.reshape([c_out, 1, 1])
    }
}

/// The positions, in a flattened padded image of row length `wp`, of every receptive field's
/// elements: entry `k·(OH·OW) + p` is element `k = i·kw + j` of the field of output position
/// `p = oy·OW + ox`, i.e. `(oy·stride + i)·wp + ox·stride + j`.
fn im2col_index(wp: usize, kernel: [usize; 2], stride: usize, out: [usize; 2]) -> Vec<f64> {
    let ([kh, kw], [oh, ow]) = (kernel, out);
    let mut index = Vec::with_capacity(kh * kw * oh * ow);
    for i in 0..kh {
        for j in 0..kw {
            for oy in 0..oh {
                for ox in 0..ow {
                    index.push(((oy * stride + i) * wp + ox * stride + j) as f64);
                }
            }
        }
    }
    index
}

/// Maximum over non-overlapping `size × size` windows of `x` `[N, C, H, W]` (stride `size`):
/// `[N, C, H/size, W/size]`. Panics unless `size` divides `H` and `W`.
#[track_caller]
pub fn max_pool2d(x: Tensor<'_>, size: usize) -> Tensor<'_> {
    windows(x, size).max(&[3, 5])
}

/// Mean over non-overlapping `size × size` windows of `x` `[N, C, H, W]` (stride `size`):
/// `[N, C, H/size, W/size]`. Panics unless `size` divides `H` and `W`.
#[track_caller]
pub fn avg_pool2d(x: Tensor<'_>, size: usize) -> Tensor<'_> {
    windows(x, size).mean(&[3, 5])
}

/// `x` `[N, C, H, W]` viewed as `[N, C, H/size, size, W/size, size]`.
#[track_caller]
fn windows(x: Tensor<'_>, size: usize) -> Tensor<'_> {
    let s = x.shape();
    assert!(
        s.rank() == 4 && size > 0 && s.dim(2).is_multiple_of(size) && s.dim(3).is_multiple_of(size),
        "pooling {size}x{size} expects [N, C, H, W] with H and W divisible by {size}, got {}",
        x.ty()
    );
    let (n, c, h, w) = (s.dim(0), s.dim(1), s.dim(2), s.dim(3));
    x.reshape([n, c, h / size, size, w / size, size])
}
