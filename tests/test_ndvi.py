"""helpers.ndvi: float32 NDVI from digital numbers.

Expected values are worked out by hand from the digital numbers in each test
(reflectance = DN * scale + offset, NDVI = (nir - red) / (nir + red)).
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from helpers.ndvi import ndvi
from tests.ndvi_textbook import textbook_ndvi


def _band(values, dtype="uint16", dims=("y", "x")) -> xr.DataArray:
    array = np.array(values, dtype=dtype)
    coords = {"y": np.arange(array.shape[-2]) * -10.0, "x": np.arange(array.shape[-1]) * 10.0}
    return xr.DataArray(array, dims=dims, coords=coords)


def test_no_underflow_where_red_is_brighter_than_nir() -> None:
    # uint16 would give 500 - 3000 = 63036; NDVI = -2500 / 3500 = -5/7
    result = ndvi(_band([[3000]]), _band([[500]]))
    assert result.dtype == np.float32
    assert float(result[0, 0]) == pytest.approx(-5 / 7, abs=1e-6)


def test_earth_search_l2a_scale_without_offset() -> None:
    # red 0.05, nir 0.30 -> 0.25 / 0.35 = 5/7
    result = ndvi(_band([[500]]), _band([[3000]]))
    assert float(result[0, 0]) == pytest.approx(5 / 7, abs=1e-6)


def test_the_offset_is_applied_when_given() -> None:
    # red 500 * 1e-4 - 0.1 = -0.05, nir 3000 * 1e-4 - 0.1 = 0.2 -> 0.25 / 0.15 = 5/3
    result = ndvi(_band([[500]]), _band([[3000]]), red_scale_offset=(1e-4, -0.1), nir_scale_offset=(1e-4, -0.1))
    assert float(result[0, 0]) == pytest.approx(5 / 3, abs=1e-5)


def test_each_band_gets_its_own_scale() -> None:
    # red 500 * 2e-4 = 0.1, nir 3000 * 1e-4 = 0.3 -> 0.2 / 0.4 = 0.5
    result = ndvi(_band([[500]]), _band([[3000]]), red_scale_offset=(2e-4, 0.0))
    assert float(result[0, 0]) == pytest.approx(0.5, abs=1e-6)


def test_nodata_in_either_band_becomes_nan() -> None:
    red = _band([[0, 1000, 1000]])
    nir = _band([[2000, 0, 3000]])
    result = ndvi(red, nir).values
    assert np.isnan(result[0, 0]) and np.isnan(result[0, 1])
    assert result[0, 2] == pytest.approx(0.5, abs=1e-6)  # 2000 / 4000


def test_nodata_none_keeps_zero_digital_numbers() -> None:
    # red 0, nir 1000 -> 1000 / 1000 = 1
    assert float(ndvi(_band([[0]]), _band([[1000]]), nodata=None)[0, 0]) == 1.0


def test_a_zero_denominator_is_nan_not_inf() -> None:
    # both 0 without nodata masking: 0 / 0
    assert np.isnan(ndvi(_band([[0]]), _band([[0]]), nodata=None)[0, 0])
    # binary-exact offsets: red 0 * 0.5 - 1 = -1, nir 2 * 0.5 = 1 -> 2 / 0
    result = ndvi(_band([[0]]), _band([[2]]), red_scale_offset=(0.5, -1.0), nir_scale_offset=(0.5, 0.0), nodata=None)
    assert np.isnan(result[0, 0])


def test_the_offset_leaves_no_rounding_residue_in_a_zero_denominator() -> None:
    # both (1e-4, -0.1): DN - 1000 is red -> 0, -100, -50, -500, -1 and nir -> 0, 100, 50,
    # 500, 1: every denominator is 0, so every NDVI is NaN (not -0 or +-1e6 from float32
    # rounding of DN * 1e-4 - 0.1)
    offset = (1e-4, -0.1)
    red = _band([[1000, 900, 950, 500, 999]])
    nir = _band([[1000, 1100, 1050, 1500, 1001]])
    assert np.isnan(ndvi(red, nir, red_scale_offset=offset, nir_scale_offset=offset).values).all()


def test_unequal_scales_cancel_to_nan_and_still_give_exact_values() -> None:
    # red 400 * 2e-4 - 0.1 = -0.02, nir 1200 * 1e-4 - 0.1 = 0.02 -> 0.04 / 0 -> NaN;
    # red 500 * 2e-4 - 0.1 = 0, nir 3000 * 1e-4 - 0.1 = 0.2 -> 0.2 / 0.2 = 1
    result = ndvi(_band([[400, 500]]), _band([[1200, 3000]]), red_scale_offset=(2e-4, -0.1), nir_scale_offset=(1e-4, -0.1))
    assert np.isnan(result.values[0, 0])
    assert result.values[0, 1] == pytest.approx(1.0, abs=1e-6)


def test_nodata_is_checked_on_the_digital_numbers_when_an_offset_is_applied() -> None:
    # DN 0 is no data even though 0 * 1e-4 - 0.1 = -0.1 is a number
    offset = (1e-4, -0.1)
    result = ndvi(_band([[0, 1500]]), _band([[3000, 0]]), red_scale_offset=offset, nir_scale_offset=offset)
    assert np.isnan(result.values).all()


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int16"])
def test_a_zero_denominator_from_signed_inputs_is_nan_not_inf(dtype) -> None:
    # already scaled or signed values can cancel out without any offset: -2 + 2 = 0
    result = ndvi(_band([[-2, 1]], dtype=dtype), _band([[2, 3]], dtype=dtype), nodata=None).values
    assert np.isnan(result[0, 0])
    assert result[0, 1] == pytest.approx(0.5, abs=1e-6)  # 2 / 4


def test_big_endian_bands_give_the_same_ndvi() -> None:
    # e.g. read from a NetCDF file written on a big-endian machine
    red, nir = [[500, 0], [3000, 800]], [[3000, 100], [500, 800]]
    big = ndvi(_band(red, dtype=">u2"), _band(nir, dtype=">u2")).values
    np.testing.assert_array_equal(big, ndvi(_band(red), _band(nir)).values)
    np.testing.assert_allclose(big, textbook_ndvi(np.array(red), np.array(nir)), rtol=1e-6, equal_nan=True)


def test_nan_in_float_inputs_propagates() -> None:
    # what rioxarray.open_rasterio(masked=True) gives: float32 with NaN for no data
    red = _band([[np.nan, 1000.0]], dtype="float32")
    nir = _band([[2000.0, 3000.0]], dtype="float32")
    result = ndvi(red, nir).values
    assert np.isnan(result[0, 0])
    assert result[0, 1] == pytest.approx(0.5, abs=1e-6)


def test_dask_inputs_stay_lazy_and_keep_their_chunks() -> None:
    red = _band(np.full((4, 6), 1000)).chunk({"y": 2, "x": 3})
    nir = _band(np.full((4, 6), 3000)).chunk({"y": 2, "x": 3})
    result = ndvi(red, nir)
    assert isinstance(result.data, da.Array)
    assert result.chunks == ((2, 2), (3, 3))
    np.testing.assert_allclose(result.values, 0.5, atol=1e-6)  # 2000 / 4000


def test_nothing_is_read_until_computed() -> None:
    def unreadable(block):
        raise AssertionError("a chunk was computed while building the graph")

    raw = da.zeros((2, 2), dtype="uint16", chunks=1).map_blocks(unreadable, dtype="uint16")
    band = xr.DataArray(raw, dims=("y", "x"))
    ndvi(band, band)  # builds the graph only
    with pytest.raises(AssertionError, match="a chunk was computed"):
        ndvi(band, band).compute(scheduler="synchronous")


def test_a_cube_with_time_keeps_its_dimensions_and_coordinates() -> None:
    # odc-stac style (time, y, x) uint16
    times = np.array(["2023-07-13", "2023-08-27"], dtype="datetime64[ns]")
    red = xr.DataArray(np.array([[[500, 0]], [[3000, 500]]], "uint16"), dims=("time", "y", "x"), coords={"time": times})
    nir = xr.DataArray(np.array([[[3000, 100]], [[500, 3000]]], "uint16"), dims=("time", "y", "x"), coords={"time": times})
    result = ndvi(red, nir)
    assert result.dims == ("time", "y", "x")
    np.testing.assert_array_equal(result.time.values, times)
    np.testing.assert_allclose(result.values[:, 0, 0], [5 / 7, -5 / 7], atol=1e-6)
    assert np.isnan(result.values[0, 0, 1])


def test_result_metadata_for_writing() -> None:
    result = ndvi(_band([[500]]), _band([[3000]]))
    assert result.name == "ndvi"
    assert np.isnan(result.rio.nodata)
    assert "scale_factor" not in result.attrs


def test_bands_on_different_grids_are_refused() -> None:
    with pytest.raises(ValueError, match="not on the same grid"):
        ndvi(_band(np.ones((2, 2))), _band(np.ones((4, 4))))
    shifted = _band(np.ones((2, 2))).assign_coords(x=[5.0, 15.0])
    with pytest.raises(ValueError, match="different 'x' coordinates.*reproject_match"):
        ndvi(_band(np.ones((2, 2))), shifted)


def test_bands_in_another_dimension_order_get_the_transpose_advice() -> None:
    red = _band(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"nir.transpose\(\*red.dims\)"):
        ndvi(red, red.T)


@pytest.mark.parametrize("bad", [(1e-4,), "0.0001", (0, 0.0), (-1e-4, 0.0), (float("nan"), 0.0)])
def test_a_bad_scale_offset_is_refused(bad) -> None:
    with pytest.raises(ValueError, match="red_scale_offset"):
        ndvi(_band([[1]]), _band([[1]]), red_scale_offset=bad)


def test_numpy_arrays_are_refused_with_advice() -> None:
    with pytest.raises(TypeError, match="must be an xarray.DataArray"):
        ndvi(np.ones((2, 2)), _band(np.ones((2, 2))))


@pytest.mark.parametrize("shape", [(300, 1000), (2, 7, 50_000), (5,)])
def test_arrays_of_any_rank_match_the_textbook_formula(shape) -> None:
    # the compiled loop sees every array as rows x columns: 2-D, 3-D and 1-D
    rng = np.random.default_rng(6)
    red_dn = rng.integers(0, 4000, shape, dtype=np.uint16)
    nir_dn = rng.integers(0, 4000, shape, dtype=np.uint16)
    dims = tuple(f"d{k}" for k in range(len(shape)))
    result = ndvi(xr.DataArray(red_dn, dims=dims), xr.DataArray(nir_dn, dims=dims))
    np.testing.assert_allclose(result.values, textbook_ndvi(red_dn, nir_dn), rtol=1e-6, atol=1e-6, equal_nan=True)


def test_non_contiguous_inputs() -> None:
    rng = np.random.default_rng(7)
    red_dn = rng.integers(0, 4000, (400, 300), dtype=np.uint16)
    nir_dn = rng.integers(0, 4000, (400, 300), dtype=np.uint16)
    red, nir = xr.DataArray(red_dn, dims=("x", "y")).T, xr.DataArray(nir_dn, dims=("x", "y")).T
    np.testing.assert_allclose(ndvi(red, nir).values, textbook_ndvi(red_dn, nir_dn).T, rtol=1e-6, atol=1e-6, equal_nan=True)


def test_the_kernel_is_compiled_when_the_lazy_ndvi_is_built_not_in_the_first_task() -> None:
    from helpers.ndvi import _ndvi_pixels

    def compiled_for_uint32() -> bool:
        return any(str(signature[0].dtype) == "uint32" for signature in _ndvi_pixels.signatures)

    assert not compiled_for_uint32()  # no other test uses uint32 bands
    band = xr.DataArray(da.ones((4, 4), dtype="uint32", chunks=2), dims=("y", "x"))
    ndvi(band, band)  # lazy: nothing computed
    assert compiled_for_uint32()
