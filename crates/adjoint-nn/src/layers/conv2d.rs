//! [`Conv2d`]: 2-D convolution (NCHW) as im2col and one matrix product, and 2-D pooling.

use crate::init::Initializer;
use crate::params::Params;
use adjoint_ir::{DType, Tensor};

/// The options of a [`Conv2d`], PyTorch's `stride`, `padding`, `dilation`, `groups` and `bias`
/// (per axis: `[height, width]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOptions {
    /// Step between receptive fields.
    pub stride: [usize; 2],
    /// Zeros added before and after each spatial axis.
    pub padding: [usize; 2],
    /// Spacing between kernel elements.
    pub dilation: [usize; 2],
    /// Channel groups: input and output channels are split into `groups` blocks, block `i` of
    /// the output seeing only block `i` of the input (`groups == in_channels` is a depthwise
    /// convolution).
    pub groups: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl Default for Conv2dOptions {
    /// Stride 1, no padding, no dilation, one group, a bias.
    fn default() -> Conv2dOptions {
        Conv2dOptions {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
            bias: true,
        }
    }
}

/// A 2-D convolution over `[N, C_in, H, W]` inputs (cross-correlation, as in PyTorch), with a
/// kernel `[C_out, C_in / groups, kh, kw]` (He normal), a bias `[C_out]` (zeros, optional), and
/// per-axis stride, zero padding and dilation ([`Conv2dOptions`]).
///
/// The forward pass is im2col: the input is padded, its spatial axes are flattened, and one
/// `gather` with a constant `i32` index (computed here, once, from the sizes) pulls out every
/// receptive field, giving columns `[N, C_in·kh·kw, OH·OW]`; the kernel reshaped to
/// `[C_out, C_in·kh·kw]` times the columns is the output `[N, C_out, OH·OW]` (with groups, one
/// batched product per group). There is no new primitive: the backward pass is the `gather`'s
/// `scatter_add` and two matrix products, which the JIT fuses and vectorizes like any other
/// graph.
///
/// ```
/// use adjoint_ir::{Builder, DType};
/// use adjoint_nn::layers::{Conv2d, Conv2dOptions};
/// use adjoint_nn::Params;
///
/// let b = Builder::new("conv");
/// let mut params = Params::new(&b, 0);
/// let x = b.input("x", DType::F32, [2, 1, 8, 8]);
/// let conv = Conv2d::new(&mut params, "conv1", 1, 4, [3, 3]).with_padding(1);
/// assert_eq!(conv.forward(x).shape().dims(), &[2, 4, 8, 8]);
/// let strided = Conv2d::new(&mut params, "conv2", 4, 6, [2, 2]).with_stride(2);
/// assert_eq!(strided.forward(conv.forward(x)).shape().dims(), &[2, 6, 4, 4]);
/// let options = Conv2dOptions { groups: 4, dilation: [2, 1], bias: false, ..Default::default() };
/// let depthwise = Conv2d::with_options(&mut params, "dw", 4, 4, [3, 3], options);
/// assert_eq!(depthwise.forward(conv.forward(x)).shape().dims(), &[2, 4, 4, 6]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Conv2d<'b> {
    /// The kernel `[C_out, C_in / groups, kh, kw]`.
    pub kernel: Tensor<'b>,
    /// The bias `[C_out]`, if any.
    pub bias: Option<Tensor<'b>>,
    /// Step between receptive fields, per spatial axis.
    pub stride: [usize; 2],
    /// Zeros added on each side, per spatial axis.
    pub padding: [usize; 2],
    /// Spacing between kernel elements, per spatial axis.
    pub dilation: [usize; 2],
    /// Channel groups.
    pub groups: usize,
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
        let options = Conv2dOptions::default();
        Conv2d::with_options(
            params,
            name,
            in_channels,
            out_channels,
            kernel_size,
            options,
        )
    }

    /// Declares a convolution with every option; panics unless the sizes, strides and
    /// dilations are positive and `groups` divides both channel counts.
    #[track_caller]
    pub fn with_options(
        params: &mut Params<'b>,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel_size: [usize; 2],
        options: Conv2dOptions,
    ) -> Conv2d<'b> {
        let [kh, kw] = kernel_size;
        let g = options.groups;
        assert!(
            in_channels > 0 && out_channels > 0 && kh > 0 && kw > 0,
            "convolution sizes must be positive"
        );
        assert!(
            options
                .stride
                .iter()
                .chain(&options.dilation)
                .all(|&v| v > 0),
            "convolution strides and dilations must be at least 1"
        );
        assert!(
            g > 0 && in_channels.is_multiple_of(g) && out_channels.is_multiple_of(g),
            "convolution groups ({g}) must divide the input ({in_channels}) and output \
             ({out_channels}) channels"
        );
        params.scope(name, |p| Conv2d {
            kernel: p.get(
                "kernel",
                &[out_channels, in_channels / g, kh, kw],
                Initializer::HeNormal,
            ),
            bias: options
                .bias
                .then(|| p.get("bias", &[out_channels], Initializer::Zeros)),
            stride: options.stride,
            padding: options.padding,
            dilation: options.dilation,
            groups: g,
        })
    }

    /// The same convolution with another stride (at least 1) along both axes.
    #[track_caller]
    pub fn with_stride(mut self, stride: usize) -> Conv2d<'b> {
        assert!(stride > 0, "convolution stride must be at least 1");
        self.stride = [stride, stride];
        self
    }

    /// The same convolution with `padding` zeros on each side of both axes.
    pub fn with_padding(mut self, padding: usize) -> Conv2d<'b> {
        self.padding = [padding, padding];
        self
    }

    /// `[C_out, C_in / groups, kh, kw]`.
    fn kernel_dims(&self) -> [usize; 4] {
        let s = self.kernel.shape();
        [s.dim(0), s.dim(1), s.dim(2), s.dim(3)]
    }

    /// Number of input channels.
    pub fn in_channels(&self) -> usize {
        self.kernel_dims()[1] * self.groups
    }

    /// The output's spatial size `(OH, OW)` for an input of `height × width`, or `None` when
    /// the padded input is smaller than the dilated kernel.
    pub fn output_size(&self, height: usize, width: usize) -> Option<(usize, usize)> {
        let [_, _, kh, kw] = self.kernel_dims();
        let window = Window {
            kernel: [kh, kw],
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
        };
        window.output_size(height, width)
    }

    /// The convolution of `x` `[N, C_in, H, W]`: `[N, C_out, OH, OW]`.
    #[track_caller]
    pub fn forward(&self, x: Tensor<'b>) -> Tensor<'b> {
        let [c_out, c_in_g, kh, kw] = self.kernel_dims();
        let c_in = self.in_channels();
        let s = x.shape();
        assert!(
            s.rank() == 4 && s.dim(1) == c_in,
            "a convolution with {c_in} input channels expects [N, {c_in}, H, W], got {}",
            x.ty()
        );
        let window = Window {
            kernel: [kh, kw],
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
        };
        let Some((oh, ow)) = window.output_size(s.dim(2), s.dim(3)) else {
            panic!(
                "a {kh}x{kw} kernel (dilation {:?}) does not fit in {} padded by {:?}",
                self.dilation,
                x.ty(),
                self.padding
            );
        };
        let n = s.dim(0);
        let columns = window.columns(x, 0.0); // [N, C_in, kh·kw, OH·OW]
        let g = self.groups;
        let k = c_in_g * kh * kw;
        let out = if g == 1 {
            let columns = columns.reshape([n, k, oh * ow]);
            self.kernel.reshape([c_out, k]).matmul(columns)
        } else {
            let columns = columns.reshape([n, g, k, oh * ow]);
            let kernel = self.kernel.reshape([g, c_out / g, k]);
            kernel.matmul(columns).reshape([n, c_out, oh * ow])
        };
        let out = out.reshape([n, c_out, oh, ow]);
        match self.bias {
            Some(b) => out + b.reshape([c_out, 1, 1]),
            None => out,
        }
    }
}

/// A sliding window over the spatial axes of `[N, C, H, W]`: kernel, stride, padding and
/// dilation per axis.
#[derive(Clone, Copy, Debug)]
struct Window {
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
}

impl Window {
    /// `(OH, OW)` with PyTorch's rule `(H + 2p - d(k - 1) - 1) / s + 1` (the remainder dropped),
    /// or `None` when the dilated kernel does not fit.
    fn output_size(&self, height: usize, width: usize) -> Option<(usize, usize)> {
        let axis = |len: usize, a: usize| {
            let padded = len + 2 * self.padding[a];
            let span = self.dilation[a] * (self.kernel[a] - 1) + 1;
            (padded >= span).then(|| (padded - span) / self.stride[a] + 1)
        };
        Some((axis(height, 0)?, axis(width, 1)?))
    }

    /// Every receptive field of `x` `[N, C, H, W]` padded with `fill`: `[N, C, kh·kw, OH·OW]`,
    /// by one `gather` of constant positions. Panics when the kernel does not fit.
    #[track_caller]
    fn columns<'b>(&self, x: Tensor<'b>, fill: f64) -> Tensor<'b> {
        let s = x.shape();
        let (n, c, h, w) = (s.dim(0), s.dim(1), s.dim(2), s.dim(3));
        let (oh, ow) = self.output_size(h, w).expect("checked by the caller");
        let [ph, pw] = self.padding;
        let padded = if ph + pw == 0 {
            x
        } else if fill == 0.0 {
            x.pad(&[0, 0, ph, pw], &[0, 0, ph, pw])
        } else {
            // Zero padding marks the inside with ones; the border takes `fill`.
            let inside = x.scalar_like(1.0).broadcast_to(s.clone());
            let mask = inside
                .pad(&[0, 0, ph, pw], &[0, 0, ph, pw])
                .gt(x.scalar_like(0.0));
            mask.select(x.pad(&[0, 0, ph, pw], &[0, 0, ph, pw]), x.scalar_like(fill))
        };
        let (hp, wp) = (h + 2 * ph, w + 2 * pw);
        let [kh, kw] = self.kernel;
        let index = self.index(wp, [oh, ow]);
        let idx = x.builder().constant(DType::I32, [index.len()], &index);
        padded
            .reshape([n, c, hp * wp])
            .gather(idx, 2)
            .reshape([n, c, kh * kw, oh * ow])
    }

    /// The positions, in a flattened padded image of row length `wp`, of every receptive
    /// field's elements: entry `k·(OH·OW) + p` is element `k = i·kw + j` of the field of output
    /// position `p = oy·OW + ox`, i.e. `(oy·sh + i·dh)·wp + ox·sw + j·dw`.
    fn index(&self, wp: usize, [oh, ow]: [usize; 2]) -> Vec<f64> {
        let ([kh, kw], [sh, sw], [dh, dw]) = (self.kernel, self.stride, self.dilation);
        let mut index = Vec::with_capacity(kh * kw * oh * ow);
        for i in 0..kh {
            for j in 0..kw {
                for oy in 0..oh {
                    for ox in 0..ow {
                        index.push(((oy * sh + i * dh) * wp + ox * sw + j * dw) as f64);
                    }
                }
            }
        }
        index
    }
}

/// The options of [`max_pool2d_with`] and [`avg_pool2d_with`], PyTorch's `kernel_size`,
/// `stride` and `padding` (per axis).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    /// Window size.
    pub kernel: [usize; 2],
    /// Step between windows (PyTorch's default is the window size).
    pub stride: [usize; 2],
    /// Padding on each side, at most half the window (as PyTorch requires).
    pub padding: [usize; 2],
}

impl Pool2d {
    /// A `size × size` window with stride `size` and no padding.
    pub fn square(size: usize) -> Pool2d {
        Pool2d {
            kernel: [size, size],
            stride: [size, size],
            padding: [0, 0],
        }
    }

    /// The windows of `x` as `[N, C, kh·kw, OH·OW]` padded with `fill`, and `(OH, OW)`.
    #[track_caller]
    fn columns<'b>(&self, x: Tensor<'b>, fill: f64, what: &str) -> (Tensor<'b>, [usize; 2]) {
        let s = x.shape();
        let ok_sizes = self.kernel.iter().chain(&self.stride).all(|&v| v > 0)
            && (0..2).all(|a| 2 * self.padding[a] <= self.kernel[a]);
        assert!(
            ok_sizes,
            "{what}: kernel and stride must be positive and padding at most half the kernel, \
             got {self:?}"
        );
        let window = Window {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            dilation: [1, 1],
        };
        let out = if s.rank() == 4 {
            window.output_size(s.dim(2), s.dim(3))
        } else {
            None
        };
        let Some((oh, ow)) = out else {
            panic!(
                "{what} {self:?} expects [N, C, H, W] at least as large as the window, got {}",
                x.ty()
            );
        };
        (window.columns(x, fill), [oh, ow])
    }
}

/// Maximum over the windows of `x` `[N, C, H, W]` with PyTorch's `MaxPool2d` rules: padding
/// counts as `-inf`, a remainder that does not fill a window is dropped.
#[track_caller]
pub fn max_pool2d_with(x: Tensor<'_>, pool: Pool2d) -> Tensor<'_> {
    let (columns, [oh, ow]) = pool.columns(x, f64::NEG_INFINITY, "max_pool2d");
    let s = x.shape();
    columns.max(&[2]).reshape([s.dim(0), s.dim(1), oh, ow])
}

/// Mean over the windows of `x` `[N, C, H, W]` with PyTorch's `AvgPool2d` rules (padding counts
/// as zeros in the mean, `count_include_pad = True`; a remainder is dropped).
#[track_caller]
pub fn avg_pool2d_with(x: Tensor<'_>, pool: Pool2d) -> Tensor<'_> {
    let (columns, [oh, ow]) = pool.columns(x, 0.0, "avg_pool2d");
    let s = x.shape();
    columns.mean(&[2]).reshape([s.dim(0), s.dim(1), oh, ow])
}

/// Maximum over non-overlapping `size × size` windows of `x` `[N, C, H, W]` (stride `size`):
/// `[N, C, H/size, W/size]`, rows and columns beyond a multiple of `size` dropped (PyTorch's
/// rule).
#[track_caller]
pub fn max_pool2d(x: Tensor<'_>, size: usize) -> Tensor<'_> {
    windows(x, size).max(&[3, 5])
}

/// Mean over non-overlapping `size × size` windows of `x` `[N, C, H, W]` (stride `size`):
/// `[N, C, H/size, W/size]`, rows and columns beyond a multiple of `size` dropped (PyTorch's
/// rule).
#[track_caller]
pub fn avg_pool2d(x: Tensor<'_>, size: usize) -> Tensor<'_> {
    windows(x, size).mean(&[3, 5])
}

/// `x` `[N, C, H, W]` cut to multiples of `size` and viewed as
/// `[N, C, H/size, size, W/size, size]`.
#[track_caller]
fn windows(x: Tensor<'_>, size: usize) -> Tensor<'_> {
    let s = x.shape();
    assert!(
        s.rank() == 4 && size > 0 && s.dim(2) >= size && s.dim(3) >= size,
        "pooling {size}x{size} expects [N, C, H, W] with H and W at least {size}, got {}",
        x.ty()
    );
    let (n, c, h, w) = (s.dim(0), s.dim(1), s.dim(2) / size, s.dim(3) / size);
    let x = x.slice(2, 0, h * size, 1).slice(3, 0, w * size, 1);
    x.reshape([n, c, h, size, w, size])
}
