"""Every public NumPy-side function of tconv, called once with every parameter by keyword.

tests/test_typing.py runs this file (so each call is one that works) and type-checks it with
``mypy --strict`` (so the annotations accept each call that works)."""

import numpy as np

import tconv
from tconv import arithmetic, checkerboard, emulate, reference, resize, subpixel

F = np.float32
x = np.ones((1, 2, 5, 5), F)  # (N, C_in, H, W)
w = np.ones((2, 3, 3, 3), F)  # (C_in, C_out, kH, kW); as a conv weight (C_out, C_in, kH, kW)
b = np.zeros(3, F)
out = np.empty((1, 3, 10, 10), F)

y = tconv.conv_transpose(input=x, weight=w, bias=b, stride=2, padding=1, output_padding=1,
                         groups=1, dilation=1, output_size=(10, 10), out=out,
                         padding_mode="circular", algorithm="direct")
tconv.conv_transpose1d(input=x[..., 0], weight=w[..., 0], bias=b, stride=2, padding=1,
                       output_padding=1, groups=1, dilation=1, output_size=[10], out=None,
                       padding_mode="zeros", algorithm="auto")
tconv.conv_transpose2d(x, w, padding_mode="circular")
tconv.conv_transpose2d(input=x, weight=w, bias=None, stride=(2, 2), padding="same",
                       output_padding=0, groups=1, dilation=(1, 1), output_size=None,
                       out=None, padding_mode="zeros", algorithm="winograd")
tconv.conv_transpose3d(input=x[..., None], weight=w[..., None], bias=b, stride=2,
                       padding=((1, 1), (1, 1), (0, 0)), output_padding=1, groups=1,
                       dilation=1, output_size=None, out=None, padding_mode="replicate",
                       algorithm="winograd4")
tconv.conv(input=y, weight=w, bias=np.zeros(2, F), stride=2, padding=1, dilation=1, groups=1,
           out=None, padding_mode="reflect", algorithm="winograd")
tconv.conv_transpose_backward(grad_output=y, input=x, weight=w, stride=2, padding=1,
                              output_padding=1, groups=1, dilation=1,
                              output_mask=(True, True, True), padding_mode="circular",
                              algorithm="auto")
tconv.conv_backward(grad_output=x, input=y, weight=w, stride=2, padding=1, dilation=1,
                    groups=1, output_mask=[True, False, True], padding_mode="zeros")
tconv.output_shape(input_shape=x.shape, weight_shape=w.shape, stride=2, padding=1,
                   output_padding=1, dilation=1, groups=1)
tconv.set_num_threads(n=tconv.get_num_threads())
tconv.plan(op="conv_transpose", input_shape=x.shape, weight_shape=w.shape, stride=2,
           padding=1, output_padding=1, groups=1, dilation=1, dtype="float32", algorithm="direct")
tconv.set_verbose(on=tconv.get_verbose())
with tconv.threads(n=1):
    tconv.set_isa(name=tconv.isa())
tconv.supported_isas()
tconv.resize_conv(input=x, weight=w.transpose(1, 0, 2, 3), scale=2, mode="bilinear", bias=b,
                  padding="same", dilation=1, groups=1)
tconv.resize_conv_backward(grad_output=y, input=x, weight=w.transpose(1, 0, 2, 3), scale=(2, 2),
                           mode="nearest", padding=1, dilation=1, groups=1,
                           output_mask=(True, True, False))
resize.upsample(input=x, scale=2, mode="linear")
resize.upsample_backward(grad_output=y, input_shape=(1, 3, 5, 5), scale=2, mode="nearest")

emulate.zero_insert(x=x, stride=2)
emulate.conv_transpose_via_conv(input=x, weight=w, bias=b, stride=2, padding=1,
                                output_padding=1, groups=1, dilation=1)
emulate.emulation_cost(input_shape=x.shape, weight_shape=w.shape, stride=2, padding=1,
                       output_padding=1, groups=1, dilation=1)
subpixel.pixel_shuffle(input=np.ones((1, 8, 3, 3), F), upscale_factor=2)
subpixel.pixel_unshuffle(input=y, downscale_factor=(2, 2))
subpixel.to_subpixel(weight=w, stride=2, padding=1, groups=1, dilation=1)
subpixel.subpixel_geometry(input_size=(5, 5), kernel_size=3, stride=2, padding=1,
                           output_padding=1, dilation=1)
subpixel.conv_transpose_subpixel(input=x, weight=w, bias=b, stride=2, padding=1,
                                 output_padding=1, groups=1, dilation=1)

arithmetic.conv_output_size(input_size=5, kernel_size=3, stride=2, padding=1, dilation=1)
arithmetic.conv_transpose_output_size(input_size=(5, 5), kernel_size=3, stride=2, padding=1,
                                      output_padding=1, dilation=1)
arithmetic.output_padding_for(output_size=(10, 10), input_shape=x.shape, kernel_size=3,
                              stride=2, padding=1, dilation=1)
arithmetic.equivalent_conv(input_size=5, kernel_size=3, stride=2, padding=1, output_padding=1,
                           dilation=1)
arithmetic.flip_kernel(weight=w, groups=1)
arithmetic.convert_weight(weight=w, from_="torch", to="jax", groups=1, spec="OIHW",
                          transpose_kernel=True, in_channels=2, out_channels=3, kernel_size=3)
arithmetic.solve(input_size=5, kernel_size=3, stride=2, dilation=1, output_size=10,
                 padding="same", convention="onnx", output_padding=None)
arithmetic.convert(params={"input_size": 5, "kernel_size": 3, "stride": 2, "padding": 1},
                   from_="torch", to="tconv")

checkerboard.overlap(kernel_size=3, stride=2, dilation=1)
checkerboard.phase_sums(weight=w, stride=2, dilation=1)
checkerboard.is_artifact_free(weight=w, stride=2, rtol=1e-6, dilation=1)
checkerboard.project(weight=w, stride=2, dilation=1)
checkerboard.icnr(weight_shape=w.shape, stride=2, rng=0, dtype=np.float32)
checkerboard.score(signal=y, stride=2, margin=1, per_sample=True)

xs, ws = np.ones((1, 1, 2), F), np.ones((1, 1, 2), F)
reference.conv_matrix(weight=ws, input_shape=(1, 3), stride=1, padding=1, dilation=1,
                      groups=1, padding_mode="zeros")
mat = reference.conv_transpose_matrix(weight=ws, input_shape=(1, 2), stride=2, padding=0,
                                      output_padding=1, dilation=1, groups=1,
                                      padding_mode="zeros")
reference.conv(input=xs, weight=ws, bias=None, stride=1, padding=1, dilation=1, groups=1,
               padding_mode="circular")
reference.conv_transpose(input=xs, weight=ws, bias=None, stride=2, padding=0, output_padding=1,
                         groups=1, dilation=1, padding_mode="zeros")
reference.conv_transpose_backward(grad_output=np.ones((1, 1, 5), F), input=xs, weight=ws,
                                  stride=2, padding=0, output_padding=1, groups=1, dilation=1,
                                  padding_mode="zeros")
reference.conv_backward(grad_output=np.ones((1, 1, 2), F), input=np.ones((1, 1, 3), F),
                        weight=ws, stride=1, padding=0, dilation=1, groups=1)
reference.conv_structural(input=xs, weight=ws, bias=None, stride=1, padding=1, dilation=1,
                          groups=1)
reference.conv_transpose_structural(input=xs, weight=ws, bias=None, stride=2, padding=0,
                                    output_padding=1, groups=1, dilation=1)
reference.format_matrix(mat=mat, names={1.0: "w"}, width=4)
reference.padding_matrix(input_shape=(1, 3), padding=1, padding_mode="reflect")
