"""The GPU path's data layout, checked without a GPU."""


def test_runtime_helpers_pack_int4_low_nibble_first():
    # Pure numpy; lives here because it belongs to the GPU path's data layout.
    import ml_dtypes
    import numpy as np

    from plugins.tensorrt.runtime import _pack_int4, _unpack_int4

    a = np.array([1, -2, 7, -8, 3], dtype=ml_dtypes.int4)
    packed = _pack_int4(a)
    assert packed.tolist() == [0xE1, 0x87, 0x03]  # (1 | -2<<4), (7 | -8<<4), (3 | pad)
    assert _unpack_int4(packed, (5,)).astype(int).tolist() == [1, -2, 7, -8, 3]
