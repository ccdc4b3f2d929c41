"""The /imagine option rules at their edges: what the API would refuse never reaches it."""

import pytest

from bot.requests import (
    SIZE_PRESETS,
    InvalidRequest,
    parse_image_request,
    parse_size,
    size_suggestions,
)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("768x768", (768, 768)),          # smallest area allowed
        ("1440x1440", (1440, 1440)),      # largest area allowed
        ("2880x720", (2880, 720)),        # ratio exactly 4:1 at the largest area
        ("720x2880", (720, 2880)),        # ratio exactly 1:4
        ("1536x384", (1536, 384)),        # ratio exactly 4 at the smallest area (589,824)
        (" 1024 × 1024 ", (1024, 1024)),  # spaces and the multiplication sign
        ("1280*720", (1280, 720)),
        ("Widescreen 16:9", (1664, 936)), # a preset's label
    ],
)
def test_sizes_that_are_accepted(size, expected):
    assert parse_size(size) == expected


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ("767x768", "size 767x768: the image must have between 768x768 (589,824) and 1440x1440 (2,073,600) pixels; this is 589,056"),
        ("1441x1440", "size 1441x1440: the image must have between 768x768 (589,824) and 1440x1440 (2,073,600) pixels; this is 2,075,040"),
        ("1537x384", "size 1537x384: the aspect ratio must be between 1:4 and 4:1"),  # 4.003:1, area fine
        ("385x1541", "size 385x1541: the aspect ratio must be between 1:4 and 4:1"),  # 1:4.003
        ("3000x100", "size 3000x100: the aspect ratio must be between 1:4 and 4:1"),
        ("0x1024", "size 0x1024: width and height must be positive"),
        ("big", "size 'big': expected WIDTHxHEIGHT in pixels, like 1280x1280"),
        ("16:9", "size '16:9': expected WIDTHxHEIGHT in pixels, like 1280x1280"),
    ],
)
def test_sizes_that_are_refused_name_the_rule_and_the_value(size, message):
    with pytest.raises(InvalidRequest) as refused:
        parse_size(size)
    assert str(refused.value) == message


def test_ratio_just_above_four_is_refused_even_with_a_valid_area():
    # 1921x480: ratio 4.002, area 922,080 (well inside the area rule).
    with pytest.raises(InvalidRequest, match="aspect ratio"):
        parse_size("1921x480")
    assert parse_size("1920x480") == (1920, 480)  # ratio exactly 4, area 921,600


@pytest.mark.parametrize("preset", SIZE_PRESETS, ids=lambda p: p.label)
def test_every_preset_is_valid(preset):
    assert parse_size(preset.size) == (preset.width, preset.height)


def test_defaults():
    request = parse_image_request("a fox")
    assert (request.size, request.n, request.prompt_extend) == ("1280x1280", 1, True)


@pytest.mark.parametrize(("n", "ok"), [(0, False), (1, True), (4, True), (5, False), (-3, False)])
def test_image_count_edges(n, ok):
    if ok:
        assert parse_image_request("a fox", n=n).n == n
    else:
        with pytest.raises(InvalidRequest) as refused:
            parse_image_request("a fox", n=n)
        assert str(refused.value) == f"n {n}: the number of images must be between 1 and 4"


def test_prompt_rules():
    assert parse_image_request("x" * 2000).prompt == "x" * 2000
    assert parse_image_request("  一只狐狸  ").prompt == "一只狐狸"
    with pytest.raises(InvalidRequest) as refused:
        parse_image_request("x" * 2001)
    assert str(refused.value) == "prompt of 2,001 characters: at most 2,000 characters are allowed"
    with pytest.raises(InvalidRequest, match=r"prompt \(empty\)"):
        parse_image_request("   \n ")


def test_autocomplete_offers_presets_and_explains_a_bad_custom_size():
    everything = size_suggestions("")
    assert len(everything) == len(SIZE_PRESETS)
    assert everything[0] == ("Square 1:1 (1280x1280)", "1280x1280")
    assert size_suggestions("portrait") == [("Portrait 3:4 (1104x1472)", "1104x1472"),
                                            ("Portrait 2:3 (1056x1584)", "1056x1584")]
    assert size_suggestions("1000x1000")[0] == ("Custom 1000x1000", "1000x1000")
    label, value = size_suggestions("3000x100")[0]
    assert "aspect ratio" in label and value == "3000x100"
    assert all(len(label) <= 100 and len(value) <= 100 for label, value in size_suggestions("9" * 200))
