"""What a job is expected to cost, from the operator's price settings (never hard-coded)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from bot.units import MILLI


@dataclass(frozen=True)
class Prices:
    image: Decimal                    # credits per image
    edited_image: Decimal             # credits per image an edit makes
    video_per_second: Decimal         # credits per second of 720p video
    video_quality_factors: dict[str, Decimal]  # multiplier by quality, 720p = 1

    def image_estimate(self, count: int) -> int:
        """Milli-credits for `count` images."""
        return _milli(self.image * count)

    def edit_estimate(self, count: int) -> int:
        """Milli-credits for `count` edited images."""
        return _milli(self.edited_image * count)

    def video_estimate(self, seconds: int, quality: str) -> int:
        """Milli-credits for a video: seconds x per-second price x the quality's factor."""
        return _milli(self.video_per_second * seconds * self.video_quality_factors[quality])


def _milli(credits: Decimal) -> int:
    return int((credits * MILLI).quantize(Decimal(1), rounding=ROUND_HALF_UP))
