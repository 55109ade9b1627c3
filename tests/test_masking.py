"""SCL classes, the mask builder and the DN-to-reflectance rule (helpers.masking).

The item fixtures in tests/fixtures/ are shaped like real Earth Search responses:
``sentinel-2-l2a`` 2023 scenes (offset already removed, flag true), a
``sentinel-2-c1-l2a`` 2023 scene (offset still in the DNs) and a 2021 scene of
baseline 03.01 (no offset ever), all three advertising ``offset: -0.1``.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import pystac
import pytest
import rioxarray
import xarray as xr

from helpers import paths
from helpers.masking import (
    DEFAULT_MASKED_CLASSES,
    SCL,
    WORKSHOP_MASKED_CLASSES,
    OffsetWarning,
    apply_scl_mask,
    check_reflectance_offset,
    common_scale_offset,
    processing_baseline,
    reflectance_scale_offset,
    scl_mask,
)

FIXTURES = Path(__file__).parent / "fixtures"


def _items(name: str) -> list[pystac.Item]:
    return list(pystac.ItemCollection.from_file(str(FIXTURES / name)))


@pytest.fixture
def l2a_2023() -> pystac.Item:
    return _items("items_sentinel-2-l2a_2023.json")[0]


@pytest.fixture
def c1_2023() -> pystac.Item:
    return _items("items_sentinel-2-c1-l2a_2023.json")[0]


@pytest.fixture
def l2a_2021() -> pystac.Item:
    return _items("items_sentinel-2-l2a_2021_baseline0301.json")[0]


# --- SCL classes and masks -------------------------------------------------------------


def test_scl_has_the_twelve_esa_classes() -> None:
    assert [c.value for c in SCL] == list(range(12))
    assert SCL(0) is SCL.NO_DATA
    assert SCL(1) is SCL.SATURATED_OR_DEFECTIVE
    assert SCL(3) is SCL.CLOUD_SHADOWS
    assert SCL(4) is SCL.VEGETATION
    assert SCL(6) is SCL.WATER
    assert SCL(8) is SCL.CLOUD_MEDIUM_PROBABILITY
    assert SCL(9) is SCL.CLOUD_HIGH_PROBABILITY
    assert SCL(10) is SCL.THIN_CIRRUS
    assert SCL(11) is SCL.SNOW_OR_ICE


def test_masked_classes_are_the_workshops_plus_nodata_and_saturated() -> None:
    assert sorted(int(c) for c in WORKSHOP_MASKED_CLASSES) == [3, 6, 8, 9, 10]
    assert sorted(int(c) for c in DEFAULT_MASKED_CLASSES) == [0, 1, 3, 6, 8, 9, 10]


def test_scl_mask_numpy_flags_exactly_the_default_classes() -> None:
    scl = np.arange(12, dtype="uint8").reshape(3, 4)
    expected = np.array(
        [
            [True, True, False, True],
            [False, False, True, False],
            [True, True, True, False],
        ]
    )
    np.testing.assert_array_equal(scl_mask(scl), expected)


def test_scl_mask_custom_classes_accepts_enum_members_and_ints() -> None:
    scl = np.array([0, 4, 9, 11], dtype="uint8")
    np.testing.assert_array_equal(
        scl_mask(scl, [SCL.SNOW_OR_ICE, 9]), [False, False, True, True]
    )


def test_scl_mask_on_dask_cube_stays_lazy_and_keeps_coordinates() -> None:
    values = np.array([[[0, 4], [9, 5]], [[4, 4], [3, 6]]], dtype="uint8")
    scl = xr.DataArray(
        da.from_array(values, chunks=(1, 2, 2)),
        dims=("time", "y", "x"),
        coords={"time": [1, 2], "y": [10.0, 0.0], "x": [0.0, 10.0]},
    )
    mask = scl_mask(scl)
    assert isinstance(mask.data, da.Array)
    assert list(mask.coords["x"].values) == [0.0, 10.0]
    np.testing.assert_array_equal(
        mask.values, [[[True, False], [True, False]], [[False, False], [True, True]]]
    )


def test_scl_mask_refuses_a_number_that_is_not_a_class() -> None:
    with pytest.raises(ValueError, match=r"12 is not an SCL class.*0 NO_DATA"):
        scl_mask(np.zeros(3, dtype="uint8"), [3, 12])


def test_apply_scl_mask_gives_float_with_nan_where_masked() -> None:
    red = np.array([100, 200, 300, 400], dtype="uint16")
    scl = np.array([4, 9, 5, 0], dtype="uint8")
    masked = apply_scl_mask(red, scl)
    assert masked.dtype.kind == "f"
    np.testing.assert_array_equal(np.isnan(masked), [False, True, False, True])
    assert masked[0] == 100 and masked[2] == 300


def test_apply_scl_mask_on_dataarray() -> None:
    red = xr.DataArray(np.array([[1000, 2000]], dtype="uint16"), dims=("y", "x"))
    scl = xr.DataArray(np.array([[3, 4]], dtype="uint8"), dims=("y", "x"))
    masked = apply_scl_mask(red, scl)
    assert np.isnan(masked.values[0, 0]) and masked.values[0, 1] == 2000


# --- processing baseline ------------------------------------------------------------------


def test_processing_baseline_from_property(l2a_2023, l2a_2021) -> None:
    assert processing_baseline(l2a_2023) == (5, 9)
    assert processing_baseline(l2a_2021) == (3, 1)


def test_processing_baseline_falls_back_to_product_uri(l2a_2021) -> None:
    item = l2a_2021.clone()
    del item.properties["s2:processing_baseline"]
    assert processing_baseline(item) == (3, 1)


def test_processing_baseline_unknown_is_none(l2a_2021) -> None:
    item = l2a_2021.clone()
    del item.properties["s2:processing_baseline"]
    del item.properties["s2:product_uri"]
    assert processing_baseline(item) is None


# --- reflectance scale and offset ---------------------------------------------------------


@pytest.mark.parametrize("band", ["red", "nir", "swir22"])
def test_earth_search_l2a_2023_offset_already_removed(l2a_2023, band) -> None:
    # raster:bands says offset -0.1, but earthsearch:boa_offset_applied is true
    assert l2a_2023.assets[band].extra_fields["raster:bands"][0]["offset"] == -0.1
    assert reflectance_scale_offset(l2a_2023, band) == pytest.approx((0.0001, 0.0))


@pytest.mark.parametrize("band", ["red", "nir", "swir22"])
def test_c1_l2a_offset_still_in_the_dns(c1_2023, band) -> None:
    assert reflectance_scale_offset(c1_2023, band) == pytest.approx((0.0001, -0.1))


@pytest.mark.parametrize("band", ["red", "nir", "swir22"])
def test_baseline_before_0400_has_no_offset(l2a_2021, band) -> None:
    # flag false and raster:bands offset -0.1, yet the DNs never carried +1000
    assert l2a_2021.properties["earthsearch:boa_offset_applied"] is False
    assert reflectance_scale_offset(l2a_2021, band) == pytest.approx((0.0001, 0.0))


def test_flag_false_on_recent_baseline_means_offset_applies(l2a_2023) -> None:
    item = l2a_2023.clone()
    item.properties["earthsearch:boa_offset_applied"] = False
    assert reflectance_scale_offset(item, "red") == pytest.approx((0.0001, -0.1))


def test_recent_baseline_without_raster_bands_uses_esa_offset(c1_2023) -> None:
    item = c1_2023.clone()
    del item.assets["red"].extra_fields["raster:bands"]
    assert reflectance_scale_offset(item, "red") == pytest.approx((0.0001, -0.1))


def test_no_metadata_at_all_means_plain_quantification(c1_2023) -> None:
    item = c1_2023.clone()
    for key in ("s2:processing_baseline", "s2:product_uri"):
        del item.properties[key]
    del item.assets["red"].extra_fields["raster:bands"]
    assert reflectance_scale_offset(item, "red") == pytest.approx((0.0001, 0.0))


def test_scale_comes_from_raster_bands(c1_2023) -> None:
    item = c1_2023.clone()
    item.assets["nir"].extra_fields["raster:bands"][0]["scale"] = 0.0002
    item.assets["nir"].extra_fields["raster:bands"][0]["offset"] = -0.2
    assert reflectance_scale_offset(item, "nir") == pytest.approx((0.0002, -0.2))


def test_same_dn_gives_the_right_reflectance_in_both_collections(l2a_2023, c1_2023) -> None:
    # The same ground reflectance 0.05 is stored as DN 500 in sentinel-2-l2a (offset
    # removed) and as DN 1500 in sentinel-2-c1-l2a (+1000 kept).
    scale, offset = reflectance_scale_offset(l2a_2023, "red")
    assert 500 * scale + offset == pytest.approx(0.05)
    scale, offset = reflectance_scale_offset(c1_2023, "red")
    assert 1500 * scale + offset == pytest.approx(0.05)


def test_scl_is_not_a_reflectance_band(l2a_2023) -> None:
    with pytest.raises(ValueError, match="not a surface reflectance band.*scl_mask"):
        reflectance_scale_offset(l2a_2023, "scl")
    with pytest.raises(ValueError, match="not a surface reflectance band"):
        reflectance_scale_offset(l2a_2023, "aot")


def test_missing_band_names_the_item_and_lists_bands(l2a_2023) -> None:
    with pytest.raises(KeyError, match=r"S2A_35SNA_20230827_0_L2A has no asset 'B8A'.*nir, red, swir22"):
        reflectance_scale_offset(l2a_2023, "B8A")


def test_fixture_is_not_mutated_by_the_rule(l2a_2023) -> None:
    before = copy.deepcopy(l2a_2023.to_dict())
    reflectance_scale_offset(l2a_2023, "red")
    assert l2a_2023.to_dict() == before


# --- one conversion for a whole cube ------------------------------------------------------


def test_common_scale_offset_of_agreeing_items() -> None:
    items = _items("items_sentinel-2-l2a_2023.json")
    assert len(items) == 2
    assert common_scale_offset(items, "nir") == pytest.approx((0.0001, 0.0))


def test_common_scale_offset_refuses_mixed_conversions(c1_2023, l2a_2021) -> None:
    with pytest.raises(ValueError, match=r"S2A_T35SNA_20230827T084601_L2A.*S2B_35SNA_20210722_0_L2A|S2B_35SNA_20210722_0_L2A.*S2A_T35SNA"):
        common_scale_offset([c1_2023, l2a_2021], "red")


def test_common_scale_offset_of_nothing() -> None:
    with pytest.raises(ValueError, match="no items"):
        common_scale_offset([], "red")


# Digital numbers of one scene as Earth Search's sentinel-2-l2a stores them (the +1000
# removed): sea, vegetation's red, soil; and the same pixels with the +1000 still in.
OFFSET_REMOVED = np.array([[0, 120, 150, 450], [600, 2500, 3200, 0]], dtype=np.uint16)
OFFSET_KEPT = np.where(OFFSET_REMOVED > 0, OFFSET_REMOVED + 1000, 0).astype(np.uint16)


def test_offset_applied_to_numbers_without_it_warns() -> None:
    with pytest.warns(OffsetWarning, match=r"66.7% .* offset -0.1.*scale_offset=\(0.0001, 0.0\)"):
        share = check_reflectance_offset(OFFSET_REMOVED, (1e-4, -0.1))
    assert share == pytest.approx(4 / 6)  # 120, 150, 450, 600 of six valid pixels


@pytest.mark.parametrize(
    ("dn", "scale_offset"),
    [(OFFSET_REMOVED, (1e-4, 0.0)), (OFFSET_KEPT, (1e-4, -0.1)), (OFFSET_REMOVED, (1e-4, 0.1))],
)
def test_a_conversion_that_makes_nothing_negative_gives_no_warning(dn, scale_offset) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_reflectance_offset(dn, scale_offset) == 0.0


def test_a_little_noise_below_zero_is_tolerated() -> None:
    dn = np.full(1000, 1150, dtype=np.uint16)
    dn[:40] = 990  # 4% of the pixels: dark water whose noise crosses zero reflectance
    dn[40:60] = 1000  # reflectance exactly 0: not negative
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_reflectance_offset(dn, (1e-4, -0.1)) == pytest.approx(0.04)
        dn[40:50] = 999  # exactly 5%: not above the limit
        assert check_reflectance_offset(dn, (1e-4, -0.1)) == pytest.approx(0.05)
    dn[:60] = 990
    with pytest.warns(OffsetWarning):
        assert check_reflectance_offset(dn, (1e-4, -0.1)) == pytest.approx(0.06)


def test_no_data_and_nan_are_not_counted() -> None:
    dn = xr.DataArray(np.array([[np.nan, 0.0, 1500.0, 500.0]]), dims=("y", "x"))
    with pytest.warns(OffsetWarning):
        assert check_reflectance_offset(dn, (1e-4, -0.1)) == pytest.approx(0.5)
    assert check_reflectance_offset(dn, (1e-4, -0.1), nodata=None, warn_share=1) == pytest.approx(2 / 3)


def test_a_sample_without_valid_pixels_says_what_to_do() -> None:
    with pytest.raises(ValueError, match="no valid pixels .* whole overview"):
        check_reflectance_offset(np.zeros((3, 3), np.uint16), (1e-4, -0.1))
    with pytest.raises(ValueError, match="scale must be positive"):
        check_reflectance_offset(OFFSET_KEPT, (0, -0.1))


def test_workshop_scene_overview_agrees_with_its_item_flag() -> None:
    """The offline scene has the +1000 removed (flag true): its red band says so too.

    The evidence is the second check: with offset 0 nothing can be negative, but the
    advertised -0.1 makes most of the scene negative, as a false flag would."""
    scene_files = paths.workshop_scene_files()
    item = pystac.Item.from_file(scene_files["item"])
    assert item.properties["earthsearch:boa_offset_applied"] is True
    red = rioxarray.open_rasterio(scene_files["red"], overview_level=2)
    assert check_reflectance_offset(red, reflectance_scale_offset(item, "red")) == 0.0
    with pytest.warns(OffsetWarning):
        assert check_reflectance_offset(red, (1e-4, -0.1)) > 0.5
