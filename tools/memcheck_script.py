"""Small workload for tools/memcheck.sh: every kernel entry point, both dtypes, 1-D/2-D/3-D,
groups/dilation/bias, the few-output-channel forward, grad_weight's outer-product form, 1 and 2
threads, empty batches, and the error paths."""

import numpy as np

import tconv
from tconv import _core

rng = np.random.default_rng(0)
for threads in (1, 2):
    tconv.set_num_threads(threads)
    for dtype in (np.float32, np.float64):
        for nd in (1, 2, 3):
            for batch in (2, 0):
                sp, k = (5,) * nd, (3,) * nd
                x = rng.standard_normal((batch, 4, *sp)).astype(dtype)
                w = rng.standard_normal((4, 3, *k)).astype(dtype)
                b = rng.standard_normal(6).astype(dtype)
                p = dict(stride=2, padding=1, output_padding=1, groups=2, dilation=1)
                y = tconv.conv_transpose(x, w, b, **p)
                tconv.conv_transpose_backward(y, x, w, **p)
                cp = dict(stride=2, padding=1, dilation=2, groups=2)
                c = tconv.conv(y, w, b[:4], **cp)
                tconv.conv_backward(c, y, w, **cp)
                # few output channels: the GEMM + col2im forward (csrc/columns.cpp)
                xc = rng.standard_normal((batch, 8, *sp)).astype(dtype)
                wc = rng.standard_normal((8, 3, *k)).astype(dtype)
                tconv.conv_transpose(xc, wc, b[:3], stride=2, padding=1, output_padding=1)
    # grad_weight's outer-product form (float32, 48-256 rows, >= 128 columns): partial row
    # tiles and column panels (2-D), several K blocks crossing batch items (1-D)
    for shape, k, s in (((2, 50, 5, 7), (3, 3), 2), ((2, 48, 200), (16,), 8)):
        xo = rng.standard_normal(shape).astype(np.float32)
        wo = rng.standard_normal((shape[1], 15 if len(k) == 2 else 9, *k)).astype(np.float32)
        yo = tconv.conv_transpose(xo, wo, stride=s, padding=1)
        tconv.conv_transpose_backward(yo, xo, wo, stride=s, padding=1)
# error paths, Python side and C++ side
x = np.zeros((1, 4, 5, 5), np.float32)
w = np.zeros((4, 2, 3, 3), np.float32)
for bad in (lambda: tconv.conv_transpose(x, w, stride=0),
            lambda: tconv.conv_transpose(x.astype(np.int32), w),
            lambda: _core.scatter(x, w, None, np.zeros((1, 3, 7, 7), np.float32),
                                  [1, 1], [0, 0], [1, 1], 1),
            lambda: _core.gather(np.zeros((1, 2, 7, 7), np.float32), w, None, x,
                                 [0, 1], [0, 0], [1, 1], 1)):
    try:
        bad()
    except (TypeError, ValueError):
        pass
print("memcheck workload done")
