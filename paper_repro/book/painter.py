"""An ipywidgets painter for Defect-GAN's control map A (live Jupyter only).

A grid of toggle cells over the image is the region; a multi-select picks the classes; "synthesize"
builds A with :func:`~paper_repro.defect_gan.control.control_map` and redraws the defaced image and
its map m. The rendered book cannot run a kernel, so chapters also show a static painted example.
"""
from __future__ import annotations

from typing import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch

from paper_repro.book.notebook import to_numpy_image
from paper_repro.defect_gan.control import control_map, synthesize


def control_painter(G, image: torch.Tensor, classes: Sequence[str], cells: int = 8):
    """A widget: paint cells, choose classes, press *synthesize*. ``image`` (3, H, W) in [-1, 1]."""
    size = image.shape[-1]
    toggles = [widgets.ToggleButton(value=False, layout=widgets.Layout(width="26px", height="26px", padding="0"))
               for _ in range(cells * cells)]
    grid = widgets.GridBox(toggles, layout=widgets.Layout(grid_template_columns=f"repeat({cells}, 28px)"))
    chooser = widgets.SelectMultiple(options=list(classes), value=[classes[0]], rows=len(classes),
                               description="classes")
    button, clear = widgets.Button(description="synthesize"), widgets.Button(description="clear")
    output = widgets.Output()

    def painted() -> np.ndarray:
        return np.array([t.value for t in toggles], dtype=bool).reshape(cells, cells)

    def run(_=None):
        with output:
            output.clear_output(wait=True)
            region = painted()
            if not region.any() or not chooser.value:
                print("paint at least one cell and choose at least one class")
                return
            A = control_map(list(chooser.value), classes, size, mask=region)
            out = synthesize(G, image[None], A.to(image.device))
            fig, axes = plt.subplots(1, 4, figsize=(8, 2.2))
            panels = [(image, "normal n"), (A.amax(0, keepdim=True) * 2 - 1, "painted region"),
                      (out.image[0], "defaced d")]
            if out.mask is not None:
                panels.append((out.mask[0] * 2 - 1, "map m"))
            for ax, (img, title) in zip(axes, panels):
                ax.imshow(to_numpy_image(img, (-1, 1)), cmap="gray", vmin=0, vmax=1)
                ax.set_title(title), ax.axis("off")
            plt.show()

    def reset(_=None):
        for t in toggles:
            t.value = False

    button.on_click(run)
    clear.on_click(reset)
    box = widgets.HBox([grid, widgets.VBox([chooser, widgets.HBox([button, clear])])])
    return widgets.VBox([box, output])


def painted_example(cells: int = 8) -> np.ndarray:
    """A fixed painted region (a diagonal stroke), the static stand-in for the painter."""
    region = np.zeros((cells, cells), bool)
    for i in range(1, cells - 1):
        region[i, i] = region[i, min(i + 1, cells - 1)] = True
    return region
