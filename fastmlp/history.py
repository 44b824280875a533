"""What ``MLP.fit`` records: one row per epoch and the loss of every mini-batch."""
from __future__ import annotations

from dataclasses import dataclass, field

COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")


@dataclass
class History:
    """Training history; ``history`` mirrors Keras's ``History.history`` dict."""

    _rows: list = field(default_factory=list)
    batch_losses: list = field(default_factory=list)
    _blocks: list = field(default_factory=list, repr=False)  # epochs not yet rows

    @property
    def rows(self):
        """One dict an epoch, with the keys ``COLUMNS`` (None where not measured)."""
        for first, losses, accuracies, seconds in self._blocks:
            self._rows += [dict(epoch=first + e, loss=loss, accuracy=accuracy, val_loss=None,
                                val_accuracy=None, seconds=seconds)
                           for e, (loss, accuracy) in enumerate(zip(losses, accuracies))]
        self._blocks.clear()
        return self._rows

    def append(self, **row):
        self.rows.append({column: row.get(column) for column in COLUMNS})

    def extend(self, first, losses, accuracies, seconds):
        """Epochs ``first, first + 1, ...`` without validation, one ``seconds`` each, as
        rows when ``rows`` is next read (what fit records after a call of many epochs)."""
        self._blocks.append((first, losses, accuracies, seconds))

    @property
    def history(self):
        """``{"loss": [...], "val_loss": [...], ...}`` with one entry per epoch."""
        return {column: [row[column] for row in self.rows] for column in COLUMNS[1:]}

    def to_frame(self):
        """A pandas DataFrame with columns epoch, loss, accuracy, val_loss, val_accuracy,
        seconds."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    def __len__(self):
        return len(self.rows)
