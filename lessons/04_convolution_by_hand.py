# %% [markdown]
# # Lesson 4: convolution by hand
#
# A convolution slides a small kernel over the image; at each position it multiplies the kernel with
# the patch under it, element by element, and sums. For an input x (C, H, W) and a kernel w (C, k, k):
#
#     out[y, x] = sum_{c, i, j}  w[c, i, j] * xpad[c, y*s + i*d, x*s + j*d]
#
# (s = stride, d = dilation, xpad = x with p zeros around it). Written as loops that is slow; two
# ideas make it fast:
#   im2col  copy every patch into one column of a matrix: (C*k*k) rows, one column per output pixel.
#           With the right strides the patches are a *view* of the image, so there is no Python loop;
#   GEMM    then every output channel is one row of weights times that matrix, and the whole layer is
#           one matrix product: w (O, C*k*k) @ cols (C*k*k, Ho*Wo).
# Then what stride, padding and dilation do to the window, the output size
#
#     Ho = floor((H + 2p - d(k - 1) - 1) / s) + 1,
#
# and a real kernel: the Sobel edge detector.
#
#     python lessons/04_convolution_by_hand.py [--quick] [--out DIR]

# %%
import itertools

import numpy as np
from matplotlib.colors import ListedColormap
from numpy.lib.stride_tricks import as_strided, sliding_window_view

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from lesson_utils import parse_args, pyplot, save_lesson_figure

args = parse_args("Lesson 4: convolution by hand", "04_convolution_by_hand", full_minutes=0.5)
rng = np.random.default_rng(0)
plt = pyplot()

# %% [markdown]
# ## 1. im2col: the patches as one matrix
#
# An array is a block of memory plus *strides*: how many bytes to move for one step along each axis.
# For a (C, H, W) float64 image the strides are (H*W*8, W*8, 8): one row down is W*8 bytes. A window
# position (i, j) moves d rows and d columns; an output position (y, x) moves s rows and s columns.
# So the 5-d array  windows[c, i, j, y, x] = xpad[c, y*s + i*d, x*s + j*d]  is just xpad's memory read
# with strides (sc, d*sh, d*sw, s*sh, s*sw): as_strided builds that view without copying anything.
# Reshaping it to (C*k*k, Ho*Wo) makes the one copy: the patch matrix.

# %%
def output_size(n, k, stride=1, padding=0, dilation=1):
    """Pixels along one axis: floor((n + 2p - d(k - 1) - 1) / s) + 1. The window reaches d(k - 1) + 1
    pixels; it fits at n + 2p - d(k - 1) positions, of which every s-th is taken."""
    return (n + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def im2col(x, k, stride=1, padding=0, dilation=1):
    """The k x k patches of a batch x (N, C, H, W) as matrices (N, C*k*k, Ho*Wo): column p of sample n
    holds the window that output pixel p = y*Wo + x reads. Returns (cols, (Ho, Wo))."""
    n, c, h, w = x.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho = output_size(h, k, stride, padding, dilation)
    wo = output_size(w, k, stride, padding, dilation)
    sn, sc, sh, sw = xpad.strides
    windows = as_strided(xpad, shape=(n, c, k, k, ho, wo),
                         strides=(sn, sc, dilation * sh, dilation * sw, stride * sh, stride * sw), writeable=False)
    return windows.reshape(n, c * k * k, ho * wo), (ho, wo)


# A tiny image whose pixel values are their own positions, so the patch matrix shows where each entry
# comes from: column 0 is the top-left 3x3 window (0 1 2 / 5 6 7 / 10 11 12) read row by row.
tiny = np.arange(25.0).reshape(1, 1, 5, 5)
cols, (ho, wo) = im2col(tiny, 3)
print("a 5x5 image:\n", tiny[0, 0].astype(int))
print(f"its 3x3 patches, one per column ({cols.shape[1]} columns for a {ho}x{wo} output):\n", cols[0].astype(int))


# The same matrix from a naive loop over output pixels (fine at 5x5; this is the definition we check
# against) and from NumPy's sliding_window_view, which builds the same strided view for stride 1.
def im2col_loops(x, k, stride, padding, dilation):
    """The definition, one output pixel at a time: column p = the window at output pixel p."""
    xpad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho = output_size(x.shape[2], k, stride, padding, dilation)
    wo = output_size(x.shape[3], k, stride, padding, dilation)
    reach = dilation * (k - 1) + 1
    columns = [xpad[:, :, row * stride:row * stride + reach:dilation, col * stride:col * stride + reach:dilation]
               .reshape(x.shape[0], -1) for row in range(ho) for col in range(wo)]
    return np.stack(columns, axis=-1)


for stride, padding, dilation in itertools.product((1, 2), (0, 1), (1, 2)):
    x = rng.standard_normal((2, 3, 7, 6))
    assert np.array_equal(im2col(x, 3, stride, padding, dilation)[0], im2col_loops(x, 3, stride, padding, dilation))
views = sliding_window_view(tiny, (3, 3), axis=(2, 3))                 # (N, C, Ho, Wo, k, k)
assert np.array_equal(cols, views.transpose(0, 1, 4, 5, 2, 3).reshape(1, 9, 9))
print("im2col by strides == the loop definition == sliding_window_view")

# The figure: the image and its patch matrix, with one window (output pixel (1, 2)) highlighted in both.
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [5, 9]})
chosen_row, chosen_col = 1, 2
chosen = chosen_row * wo + chosen_col                                   # its column in the patch matrix
axes[0].imshow(tiny[0, 0], cmap="Blues", alpha=0.35)
axes[1].imshow(cols[0], cmap="Blues", alpha=0.35)
window = cols[0][:, chosen].astype(int)
for (r, c), value in np.ndenumerate(tiny[0, 0].astype(int)):
    axes[0].text(c, r, value, ha="center", va="center", fontweight="bold" if value in window else "normal",
                 color="tab:red" if value in window else "black")
for (r, c), value in np.ndenumerate(cols[0].astype(int)):
    axes[1].text(c, r, value, ha="center", va="center", color="tab:red" if c == chosen else "black")
axes[0].add_patch(plt.Rectangle((chosen_col - 0.5, chosen_row - 0.5), 3, 3, fill=False, lw=2, ec="tab:red"))
axes[1].add_patch(plt.Rectangle((chosen - 0.5, -0.5), 1, 9, fill=False, lw=2, ec="tab:red"))
axes[0].set_title("5x5 image (values = positions)")
axes[1].set_title("im2col: one 3x3 patch per column (9 = 3x3 outputs)")
axes[1].set_xlabel("output pixel p = y * Wo + x")
axes[1].set_ylabel("position in the window (c, i, j)")
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
save_lesson_figure(fig, args.out, "im2col_patch_matrix.png")

# %% [markdown]
# ## 2. Convolution = one matrix product
#
# With the patches as columns, output channel o at pixel p is  sum_k w[o, k] * cols[k, p]: a row of
# weights times a column of patch values. For all channels and pixels at once:
#     out (N, O, Ho*Wo) = w (O, C*k*k) @ cols (N, C*k*k, Ho*Wo)  + bias[:, None]
# matmul broadcasts over the batch, and BLAS does the heavy lifting. (Deep-learning "convolution" does
# not flip the kernel: strictly it is a cross-correlation. A learned kernel does not care.)

# %%
def conv2d_by_hand(x, w, b, stride=1, padding=0, dilation=1):
    """x (N, C, H, W), w (O, C, k, k), b (O,) -> (N, O, Ho, Wo) as im2col + one matrix product."""
    cols, (ho, wo) = im2col(x, w.shape[-1], stride, padding, dilation)
    out = w.reshape(w.shape[0], -1) @ cols + b[:, None]
    return out.reshape(x.shape[0], w.shape[0], ho, wo)


# Checked against the engine's F.conv2d (its own im2col + GEMM, with a different memory layout), on
# random inputs and every combination of the settings; float64, so agreement means the same sums.
settings = list(itertools.product((1, 2, 3), (0, 1, 2), (1, 2)))      # stride, padding, dilation
settings = settings[::3] if args.quick else settings
for stride, padding, dilation in settings:
    x = rng.standard_normal((2, 3, 11, 9))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    ours = conv2d_by_hand(x, w, b, stride, padding, dilation)
    engine = F.conv2d(tg.Tensor(x), tg.Tensor(w), tg.Tensor(b), stride=stride, padding=padding,
                      dilation=dilation).numpy()
    assert ours.shape == engine.shape and np.allclose(ours, engine, rtol=1e-10, atol=1e-12), (stride, padding, dilation)
print(f"conv2d by hand matches F.conv2d for {len(settings)} (stride, padding, dilation) settings")

# The backward pass reuses the same patches. Out = W @ cols, so for a loss L with dL/dOut = G:
#     dL/dW = sum_n G[n] @ cols[n]^T      (the patches, weighted by how much each output mattered)
#     dL/dcols = W^T @ G[n], folded back onto the image (col2im: each pixel sums over the windows
#                that read it)
# Here dL/dW by hand against autograd through F.conv2d:
x = rng.standard_normal((2, 3, 8, 8))
w = tg.Tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
upstream = rng.standard_normal((2, 4, 4, 4))                           # a random dL/dOut (stride 2, pad 1)
F.conv2d(tg.Tensor(x), w, stride=2, padding=1).backward(upstream)
cols, _ = im2col(x, 3, stride=2, padding=1)
grad_w = (upstream.reshape(2, 4, -1) @ cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
assert np.allclose(grad_w, w.grad.numpy())
print("dL/dW = sum_n dL/dOut[n] @ cols[n]^T matches autograd")

# %% [markdown]
# ## 3. Stride, padding, dilation and the output size
#
#   padding p   adds p rows/columns of zeros on each side: the window can centre on border pixels.
#               With k = 3, p = 1 and s = 1 the output has the input's size ("same").
#   stride s    moves the window s pixels at a time: the output shrinks by about s on each axis.
#   dilation d  spreads the window's taps d pixels apart: a 3x3 kernel sees a 5x5 area with d = 2,
#               more context for the same 9 weights.
# The window covers d(k - 1) + 1 pixels, and fits at the positions 0 .. H + 2p - d(k - 1) - 1; taking
# every s-th gives floor((H + 2p - d(k - 1) - 1) / s) + 1 outputs. The formula against the engine:

# %%
checked = 0
for h, k, stride, padding, dilation in itertools.product((5, 8, 13), (1, 3, 5), (1, 2, 3), (0, 1, 2), (1, 2)):
    if dilation * (k - 1) + 1 > h + 2 * padding:
        continue                                                      # the window does not fit at all
    out = F.conv2d(tg.zeros(1, 1, h, h), tg.zeros(1, 1, k, k), stride=stride, padding=padding, dilation=dilation)
    assert out.shape[2:] == (output_size(h, k, stride, padding, dilation),) * 2
    checked += 1
print(f"output size formula agrees with F.conv2d on {checked} settings")


# Which input pixels feed one output pixel? Number every cell of the *padded* grid, unfold the numbers
# with im2col, and read the chosen output pixel's column: those are the cells its window reads.
def cells_read(size, k, stride, padding, dilation, out_pixel):
    """A boolean (size + 2p, size + 2p) grid: the padded-input cells read by output pixel (y, x)."""
    side = size + 2 * padding
    numbers = np.arange(side * side, dtype=np.float64).reshape(1, 1, side, side)
    cols, (_, wo) = im2col(numbers, k, stride, 0, dilation)               # already padded: p = 0 here
    read = np.zeros(side * side, dtype=bool)
    read[cols[0, :, out_pixel[0] * wo + out_pixel[1]].astype(int)] = True
    return read.reshape(side, side)


# An independent check of the same question through autograd: with a kernel of ones, the gradient of
# that one output pixel is 1 exactly at the real (unpadded) input pixels it reads, 0 elsewhere.
def cells_read_by_autograd(size, k, stride, padding, dilation, out_pixel):
    x = tg.zeros(1, 1, size, size, dtype=np.float64, requires_grad=True)
    out = F.conv2d(x, tg.ones(1, 1, k, k, dtype=np.float64), stride=stride, padding=padding, dilation=dilation)
    upstream = np.zeros(out.shape)
    upstream[0, 0][out_pixel] = 1.0
    out.backward(upstream)
    return x.grad.numpy()[0, 0] != 0


size, k = 7, 3
cases = [(1, 0, 1), (1, 1, 1), (2, 1, 1), (1, 2, 2), (2, 2, 2)]     # (stride, padding, dilation)
fig, axes = plt.subplots(2, len(cases), figsize=(3.2 * len(cases), 6.4), gridspec_kw={"height_ratios": [3, 2]})
for col, (stride, padding, dilation) in enumerate(cases):
    n_out = output_size(size, k, stride, padding, dilation)
    out_pixel = (1, n_out // 2)
    read = cells_read(size, k, stride, padding, dilation, out_pixel)
    inside = read[padding:padding + size, padding:padding + size]
    assert np.array_equal(inside, cells_read_by_autograd(size, k, stride, padding, dilation, out_pixel))
    side = size + 2 * padding
    grid = np.zeros((side, side))                                          # 0: padding (zeros)
    grid[padding:padding + size, padding:padding + size] = 1                # 1: real input pixel
    grid[read] += 2                                                        # 2: padding read, 3: pixel read
    axes[0, col].imshow(grid, cmap=ListedColormap(
        ["lightgray", "white", "salmon", "tab:red"]), vmin=0, vmax=3)
    axes[0, col].add_patch(plt.Rectangle((padding - 0.5, padding - 0.5), size, size, fill=False, lw=1.5))
    axes[0, col].set_title(f"s={stride} p={padding} d={dilation}\ninput {size}x{size} (+ padding, grey)", fontsize=9)
    out_grid = np.zeros((n_out, n_out))
    out_grid[out_pixel] = 1
    axes[1, col].imshow(out_grid, cmap="Reds", vmin=0, vmax=1.3)
    axes[1, col].set_title(f"output {n_out}x{n_out} = floor(({size}+{2 * padding}-{dilation * (k - 1)}-1)/{stride})+1",
                           fontsize=8)
    for ax, n in ((axes[0, col], side), (axes[1, col], n_out)):
        ax.set_xticks(np.arange(-0.5, n, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, n, 1), minor=True)
        ax.grid(which="minor", color="black", lw=0.3)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
fig.suptitle(f"the cells a {k}x{k} kernel reads for the red output pixel: input pixels (red), "
             f"padding zeros (light red)")
save_lesson_figure(fig, args.out, "stride_padding_dilation.png")

# %% [markdown]
# ## 4. A real kernel: the Sobel edge detector
#
# Sobel-x = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]] is a horizontal difference (right minus left),
# smoothed over three rows: large where the brightness changes from left to right, i.e. on vertical
# edges; its transpose finds horizontal edges. Stacked as two output channels of one weight
# (2, 1, 3, 3), one conv2d computes both; |gradient| = sqrt(gx^2 + gy^2) is the edge strength.

# %%
def draw_scene(size):
    """A grayscale test image: a bright disk, a tilted square and a soft left-to-right shading."""
    v, u = np.mgrid[0:size, 0:size] / size
    disk = (u - 0.32) ** 2 + (v - 0.35) ** 2 < 0.2 ** 2
    a, b = (u - 0.68) * np.cos(0.5) + (v - 0.68) * np.sin(0.5), -(u - 0.68) * np.sin(0.5) + (v - 0.68) * np.cos(0.5)
    square = (np.abs(a) < 0.17) & (np.abs(b) < 0.17)
    return (0.25 * u + 0.7 * disk + 0.45 * square).astype(np.float32)


image = tg.Tensor(draw_scene(48 if args.quick else 96)[None, None])
sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32)
sobel = tg.Tensor(np.stack([sobel_x, sobel_x.T])[:, None])                # (2, 1, 3, 3): x and y
gradients = F.conv2d(image, sobel, padding=1)                              # "same" size: k=3, p=1, s=1
gx, gy = gradients.numpy()[0]
magnitude = np.sqrt(gx ** 2 + gy ** 2)
coarse = F.conv2d(image, sobel, padding=1, stride=2).numpy()[0]           # stride 2: every other pixel
print(f"image {tuple(image.shape[2:])} -> edges {magnitude.shape} (p=1), {coarse.shape[1:]} with stride 2")
assert np.allclose(coarse, gradients.numpy()[0][:, ::2, ::2])             # stride 2 = every other output
# By hand: across a vertical step of height 1, the kernel's right column (1, 2, 1) sits on ones and its
# left column on zeros, so gx = 1 + 2 + 1 = 4 on both columns next to the step, 0 away from it.
step = tg.Tensor(np.repeat([[0, 0, 0, 1, 1, 1]], 5, axis=0).astype(np.float32)[None, None])
assert np.array_equal(F.conv2d(step, sobel[:1]).numpy()[0, 0], np.tile([0, 4, 4, 0], (3, 1)))
# The lines along the border in the figure are not in the scene: zero padding puts a step from the
# image down to 0 there (largest on the right, where the shading is brightest). Reflection padding,
# or cropping the border, would avoid it.

fig, axes = plt.subplots(1, 5, figsize=(17, 3.6))
panels = [(image.numpy()[0, 0], "image", "gray"), (gx, "Sobel x: vertical edges", "RdBu_r"),
          (gy, "Sobel y: horizontal edges", "RdBu_r"), (magnitude, "|gradient| (p=1, same size)", "magma"),
          (np.hypot(*coarse), f"|gradient| with stride 2: {coarse.shape[1]}x{coarse.shape[2]}", "magma")]
for ax, (values, title, cmap) in zip(axes, panels):
    limit = np.abs(values).max()
    shown = ax.imshow(values, cmap=cmap, vmin=-limit if cmap == "RdBu_r" else None,
                      vmax=limit if cmap == "RdBu_r" else None)
    fig.colorbar(shown, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=10)
    ax.axis("off")
save_lesson_figure(fig, args.out, "sobel_edges.png")


# %% [markdown]
# ## What to look at
#
# - `im2col_patch_matrix.png`: each column is one patch; a convolution is one matrix product with it.
# - `stride_padding_dilation.png`: output size = floor((n + 2 padding - dilation (k - 1) - 1) / stride) + 1.
# - `sobel_edges.png`: the Sobel kernels answer where the brightness changes, and in which direction.
#
# ## Exercises (change one line)
#
# 1. In section 4, `F.conv2d(image, sobel, padding=1)` with `padding=0`: by the formula above the edge map
#    loses one pixel on every side (and the border artefact it discusses goes with it).
# 2. In `output_size`'s calls, try k=5, padding=2, stride 1: the output keeps the input's size, as with
#    k=3, padding=1.
