"""tconv.torch's functions and layers, called with every parameter by keyword (see
numpy_api.py)."""

import torch

import tconv.torch as tt

x = torch.ones(1, 2, 5, 5)
w = torch.ones(2, 3, 3, 3)
b = torch.zeros(3)

tt.conv_transpose2d(x, w, padding_mode="circular")
tt.conv_transpose2d(input=x, weight=w, bias=b, stride=2, padding=1, output_padding=1, groups=1,
                    dilation=1, padding_mode="reflect", algorithm="winograd")
tt.conv_transpose1d(input=x[..., 0], weight=w[..., 0], bias=None, stride=(2,), padding=(1,),
                    output_padding=0, groups=1, dilation=1, padding_mode="zeros",
                    algorithm="direct")
tt.conv_transpose3d(input=x[..., None], weight=w[..., None], bias=b, stride=(2, 2, 1),
                    padding=0, output_padding=(1, 1, 0), groups=1, dilation=1,
                    padding_mode="replicate", algorithm="auto")
for layer in (
    tt.ConvTranspose1d(in_channels=2, out_channels=3, kernel_size=3, stride=2, padding=1,
                       output_padding=1, groups=1, bias=True, dilation=1,
                       padding_mode="circular", device=None, dtype=None, algorithm="direct"),
    tt.ConvTranspose2d(in_channels=2, out_channels=3, kernel_size=(3, 3), stride=2, padding=1,
                       output_padding=1, groups=1, bias=False, dilation=1,
                       padding_mode="zeros", device="cpu", dtype=torch.float32,
                       algorithm="winograd"),
    tt.ConvTranspose3d(in_channels=2, out_channels=3, kernel_size=3, stride=2, padding=1,
                       output_padding=1, groups=1, bias=True, dilation=1,
                       padding_mode="reflect", device=None, dtype=torch.float64,
                       algorithm="winograd4"),
):
    nd = len(layer.kernel_size)
    layer(input=torch.ones(1, 2, *(5,) * nd, dtype=layer.weight.dtype), output_size=[10] * nd)
model = tt.convert(module=torch.nn.Sequential(torch.nn.ConvTranspose2d(2, 3, 3)), inplace=False)
tt.revert(module=model, inplace=True)
