"""Figures shared by the notebooks. matplotlib is imported inside each function (the core never needs it)."""
from __future__ import annotations

import numpy as np

from ..data.classes import ClassSet


def legend_handles(classset: ClassSet, with_unknown: bool = True):
    from matplotlib.patches import Patch

    cols = classset.palette() / 255.0
    names = list(classset.names) + (["unknown"] if with_unknown else [])
    return [Patch(facecolor=cols[i], edgecolor="0.5", label=n) for i, n in enumerate(names)]


def class_mask_image(full: np.ndarray, sparse: np.ndarray, class_id: int, classset: ClassSet) -> np.ndarray:
    """The pattern for one class: kept pixels in the class colour, hidden ones light grey, others white."""
    img = np.full(full.shape + (3,), 255, np.uint8)
    where = full == class_id
    img[where] = 205
    img[where & (sparse == class_id)] = classset.colors[class_id]
    return img


def masking_figure(photos, fulls, sparses, scribbled, classset: ClassSet, classes_shown=(1, 6, 8, 5)):
    """Rows of: photo | full layout | one pattern per class | class-wise masked layout | scribbles (Fig. 4)."""
    import matplotlib.pyplot as plt

    n = len(photos)
    cols = 4 + len(classes_shown)
    fig, axes = plt.subplots(n, cols, figsize=(1.7 * cols, 1.8 * n + 0.6), squeeze=False)
    titles = (["photo", "full layout"] + [f"mask: {classset.names[c]}" for c in classes_shown]
              + ["class-wise masked", "scribbles"])
    for r in range(n):
        u = classset.unknown_id
        row = [photos[r], classset.ids_to_colors(fulls[r])]
        row += [class_mask_image(fulls[r], sparses[r], c, classset) for c in classes_shown]
        row += [classset.ids_to_colors(sparses[r]), classset.ids_to_colors(scribbled[r])]
        for c, img in enumerate(row):
            ax = axes[r, c]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=8)
        axes[r, -2].set_xlabel(f"{100 * (sparses[r] != u).mean():.0f}% labelled", fontsize=7)
        axes[r, -1].set_xlabel(f"{100 * (scribbled[r] != u).mean():.0f}% labelled", fontsize=7)
    fig.legend(handles=legend_handles(classset), loc="lower center", ncol=len(classset.names) + 1, fontsize=7,
               frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def image_grid(rows: list[list[np.ndarray]], row_titles=None, col_titles=None, size: float = 1.6):
    """A plain grid of images (uint8 RGB or id maps already coloured)."""
    import matplotlib.pyplot as plt

    nr, nc = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(nr, nc, figsize=(size * nc, size * nr + 0.3), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(nc):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(row) and row[j] is not None:
                ax.imshow(row[j], interpolation="nearest")
            else:
                ax.axis("off")
            if i == 0 and col_titles and j < len(col_titles):
                ax.set_title(col_titles[j], fontsize=8)
            if j == 0 and row_titles:
                ax.set_ylabel(row_titles[i], fontsize=8)
    fig.tight_layout()
    return fig
