"""Burned-area helpers: NBR, the clear-sky median composite, the mask and the truth check."""

from __future__ import annotations

import dask.array as da
import geopandas as gpd
import numpy as np
import pytest
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_zeros
from shapely.geometry import box

from helpers.burn import (
    DNBR_LOW_SEVERITY,
    DNBR_SEVERITY_CLASSES,
    BurnedAreaCheck,
    burned_mask,
    clear_median,
    compare_with_truth,
    nbr,
)

# 100 x 100 pixels of 20 m (2 km x 2 km) in UTM 35N, top-left corner at (580000, 4000000)
X0, Y0, RES = 580_000, 4_000_000, 20


@pytest.fixture
def geobox() -> GeoBox:
    return GeoBox.from_bbox((X0, Y0 - 2000, X0 + 2000, Y0), crs="EPSG:32635", resolution=RES)


def _square(col0: int, row0: int, cols: int, rows: int):
    """Polygon covering whole pixels [col0, col0+cols) x [row0, row0+rows) of the grid."""
    return box(X0 + col0 * RES, Y0 - (row0 + rows) * RES, X0 + (col0 + cols) * RES, Y0 - row0 * RES)


def test_nbr_of_burned_and_healthy_vegetation() -> None:
    nir = xr.DataArray(np.array([[3000, 1200, 0]], dtype="uint16"), dims=("y", "x"))
    swir22 = xr.DataArray(np.array([[1000, 2000, 900]], dtype="uint16"), dims=("y", "x"))
    value = nbr(nir, swir22).values
    assert value[0, 0] == pytest.approx((3000 - 1000) / (3000 + 1000))
    assert value[0, 1] == pytest.approx((1200 - 2000) / (1200 + 2000))
    assert np.isnan(value[0, 2])  # nodata nir


def test_nbr_applies_the_offset_when_the_dns_carry_it() -> None:
    # sentinel-2-c1-l2a: reflectance = dn * 0.0001 - 0.1
    nir = xr.DataArray(np.array([[4000]], dtype="uint16"), dims=("y", "x"))
    swir22 = xr.DataArray(np.array([[2000]], dtype="uint16"), dims=("y", "x"))
    value = nbr(nir, swir22, nir_scale_offset=(1e-4, -0.1), swir22_scale_offset=(1e-4, -0.1))
    assert value.item() == pytest.approx((0.3 - 0.1) / (0.3 + 0.1))


def test_clear_median_skips_cloudy_dates_and_stays_lazy() -> None:
    values = np.array(
        [[[0.5, np.nan]], [[0.7, np.nan]], [[np.nan, np.nan]], [[0.6, 0.2]]], dtype="float32"
    )
    index = xr.DataArray(da.from_array(values, chunks=(1, 1, 2)), dims=("time", "y", "x"))
    composite = clear_median(index)
    assert isinstance(composite.data, da.Array)
    result = composite.values
    assert result[0, 0] == pytest.approx(0.6)
    assert result[0, 1] == pytest.approx(0.2)


def test_clear_median_never_clear_is_nan_without_warning(recwarn) -> None:
    index = xr.DataArray(np.full((3, 1, 1), np.nan, dtype="float32"), dims=("time", "y", "x"))
    assert np.isnan(clear_median(index).values[0, 0])
    assert not [w for w in recwarn if "All-NaN" in str(w.message)]


@pytest.mark.parametrize(("values", "expected"), [([0.5, np.nan, 0.7, 0.6], 0.6), ([np.nan, np.nan], np.nan)])
def test_clear_median_of_one_pixel_series(values, expected) -> None:
    # a single pixel through time, as notebook 03 picks one out of the cube
    index = xr.DataArray(np.array(values, dtype="float32"), dims=("time",))
    result = clear_median(index)
    assert result.dims == () and result.dtype == np.float32
    np.testing.assert_allclose(result.values, expected, equal_nan=True)


def test_clear_median_of_no_dates_says_what_to_do() -> None:
    index = xr.DataArray(np.zeros((0, 1, 1), dtype="float32"), dims=("time", "y", "x"))
    with pytest.raises(ValueError, match="widen the date range"):
        clear_median(index)


def test_burned_mask_threshold_and_nan() -> None:
    dnbr = xr.DataArray(np.array([0.05, 0.10, 0.5, np.nan]), dims="x")
    np.testing.assert_array_equal(burned_mask(dnbr).values, [False, True, True, False])
    np.testing.assert_array_equal(burned_mask(dnbr, 0.27).values, [False, False, True, False])
    assert DNBR_LOW_SEVERITY == 0.10


def test_compare_with_truth_counts_area_and_iou(geobox: GeoBox) -> None:
    burned = xr_zeros(geobox, dtype="bool")
    burned.values[10:60, 20:70] = True  # 50 x 50 pixels = 1.0 km2
    truth = gpd.GeoDataFrame({"area_km2": [1.0]}, geometry=[_square(10, 10, 50, 50)], crs=32635)
    check = compare_with_truth(burned, truth)
    assert check.area_km2 == pytest.approx(1.0)
    assert check.truth_area_km2 == pytest.approx(1.0)
    # overlap 40 x 50 = 2000 pixels, union 2500 + 2500 - 2000 = 3000
    assert check.iou == pytest.approx(2000 / 3000)
    assert str(check) == "burned area: 1.0 km2 (truth 1.0 km2), IoU 0.67"


def test_compare_with_truth_reprojects_the_truth(geobox: GeoBox) -> None:
    burned = xr_zeros(geobox, dtype="bool")
    burned.values[10:60, 10:60] = True
    truth = gpd.GeoDataFrame(
        {"area_km2": [1.0]}, geometry=[_square(10, 10, 50, 50)], crs=32635
    ).to_crs(4326)
    check = compare_with_truth(burned, truth)
    assert check.iou > 0.97  # the same square, up to the reprojected edges


def test_compare_with_truth_scar_partly_outside_the_map(geobox: GeoBox) -> None:
    burned = xr_zeros(geobox, dtype="bool")
    burned.values[0:50, 50:100] = True  # 1.0 km2 at the east edge
    # the scar reaches 50 pixels (1 km) beyond the east edge of the map: half is outside
    truth = gpd.GeoDataFrame({"area_km2": [2.0]}, geometry=[_square(50, 0, 100, 50)], crs=32635)
    check = compare_with_truth(burned, truth)
    assert check.truth_area_km2 == pytest.approx(1.0)
    assert check.iou == pytest.approx(1.0)


def test_relative_error() -> None:
    assert BurnedAreaCheck(105.0, 100.0, 0.9).relative_error == pytest.approx(0.05)


def test_compare_with_truth_refuses_a_time_series(geobox: GeoBox) -> None:
    burned = xr_zeros(geobox, dtype="bool").expand_dims(time=2)
    truth = gpd.GeoDataFrame(geometry=[_square(0, 0, 10, 10)], crs=32635)
    with pytest.raises(ValueError, match="one 2-D map"):
        compare_with_truth(burned, truth)


def test_compare_with_truth_without_a_crs_says_how_to_set_it(geobox: GeoBox) -> None:
    burned = xr_zeros(geobox, dtype="bool")
    truth = gpd.GeoDataFrame(geometry=[_square(0, 0, 10, 10)])
    with pytest.raises(ValueError, match=r"no CRS.*truth.set_crs\('EPSG:32635'\)"):
        compare_with_truth(burned, truth)


def test_compare_with_truth_refuses_degrees() -> None:
    geobox = GeoBox.from_bbox((27.9, 36.1, 28.0, 36.2), crs="EPSG:4326", resolution=0.001)
    truth = gpd.GeoDataFrame(geometry=[box(27.95, 36.15, 27.96, 36.16)], crs=4326)
    with pytest.raises(ValueError, match="not in metres"):
        compare_with_truth(xr_zeros(geobox, dtype="bool"), truth)


def test_severity_classes_tile_the_dnbr_axis() -> None:
    bounds = list(DNBR_SEVERITY_CLASSES.values())
    assert bounds[0][0] == -np.inf and bounds[-1][1] == np.inf
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert [b[0] for b in bounds[1:]] == [0.10, 0.27, 0.44, 0.66]  # Key & Benson 2006
