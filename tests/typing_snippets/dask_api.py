"""tconv.dask, called with every parameter by keyword (see numpy_api.py)."""

import numpy as np

import tconv.dask

x = np.ones((1, 2, 5, 5), np.float32)
w = np.ones((2, 3, 3, 3), np.float32)
y = tconv.dask.conv_transpose(input=x, weight=w, bias=np.zeros(3, np.float32), stride=2,
                              padding=1, output_padding=1, groups=1, dilation=1,
                              output_size=(10, 10), chunks=5)
np.asarray(y)  # computes the graph
