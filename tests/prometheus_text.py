"""What a Prometheus scrape of /metrics holds, read with prometheus_client's own parser: every
sample by name and labels, as Prometheus would store it."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    text: str
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        return cls(text, samples)

    def value(self, name: str, **labels: str) -> float | None:
        """The sample `name` with exactly these labels, or None if the scrape has no such series."""
        return self.samples.get((name, frozenset(labels.items())))

    def series(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        """Every series of the sample `name`: {labels: value}."""
        return {labels: value for (sample, labels), value in self.samples.items() if sample == name}

    def label_values(self) -> set[str]:
        return {value for _, labels in self.samples for _, value in labels}
