"""What ``MLP.fit`` records: one row per epoch and the loss of every mini-batch."""
from __future__ import annotations

from dataclasses import dataclass, field

COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")


@dataclass
class History:
    """Training history; ``history`` mirrors Keras's ``History.history`` dict."""

    rows: list = field(default_factory=list)
    batch_losses: list = field(default_factory=list)

    def append(self, **row):
        self.rows.append({column: row.get(column) for column in COLUMNS})

    @property
    def history(self):
        """``{"loss": [...], "val_loss": [...], ...}`` with one entry per epoch."""
        return {column: [row[column] for row in self.rows] for column in COLUMNS[1:]}

    def to_frame(self):
        """A pandas DataFrame with columns epoch, loss, accuracy, val_loss, val_accuracy, seconds."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    def __len__(self):
        return len(self.rows)
