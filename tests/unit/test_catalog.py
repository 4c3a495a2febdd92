import pytest

from edgetrain.core.catalog import CATALOG, UnknownProfileError, get_profile

REQUIRED = ["jetson-nano", "jetson-tx2", "jetson-xavier-nx", "jetson-orin-nano", "raspberry-pi-4",
            "smartphone", "laptop"]
FIGURES = ["idle_power_w", "active_power_w", "radio_tx_j_per_byte", "radio_rx_j_per_byte", "memory_mb",
           "cpu_cores"]


@pytest.mark.parametrize("name", REQUIRED)
def test_required_profiles_have_cited_plausible_numbers(name):
    profile = get_profile(name)
    for figure in FIGURES:
        assert len(getattr(profile, figure).source) > 20, f"{name}.{figure} has no real citation"
    assert 0 < profile.idle_power_w.value < profile.active_power_w.value < 200
    assert 1e-9 < profile.radio_tx_j_per_byte.value < 1e-4
    assert 512 <= profile.memory_mb.value <= 65536


def test_unknown_profile_is_one_sentence_listing_the_known_ones():
    with pytest.raises(UnknownProfileError) as info:
        get_profile("toaster")
    message = str(info.value).strip("'\"")
    assert "toaster" in message and all(name in message for name in CATALOG)
