"""Causal: what the causal runs found at the emotion step (``modbias causal ...``).

A knockout run is drawn as curves per modality over window starts (mean change of LD =
log p(audio cue) − log p(visual cue)); a patch or DLA run as its per-head effect heatmap next to
the c_h heatmap of the same run (Eq. 5, pooled over the chosen samples), the biased set H_bias at
τ (Eq. 7) outlined on both; a lens run as LD read at each layer.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from dash import Input, Output, dcc, html
from plotly.subplots import make_subplots

from modbias.analysis.causal import effect_of, head_map, pooled_ratio
from modbias_app.figures import cell_path, set_title
from modbias_app.runs import RunInfo, StoreFieldError, open_dataset
from modbias_app.views.common import in_cache, shows_errors

TAB, ID = "Causal", "causal"
RUN, SUBSET, TAU, GRAPH, NOTE = "causal-run", "causal-subset", "causal-tau", "causal-graph", "causal-note"
KINDS = ("knockout", "patch", "dla", "lens")
COLOURS = {"visual": "#1f77b4", "audio": "#d62728"}


def layout(runs: list[RunInfo], cache: str) -> html.Div:
    """Causal tab: its own run menu (knockout, patch, dla and lens runs), subset and τ controls, note and graph.

    Args:
        runs: the cache's runs; those of a causal kind fill the menu (the last one chosen).
        cache: not read.

    Returns:
        The Causal tab's ``html.Div``.
    """
    causal_runs = [r.path for r in runs if r.kind in KINDS]
    return html.Div([
        html.Div([
            dcc.Dropdown(id=RUN, options=causal_runs, value=causal_runs[-1] if causal_runs else None,
                         placeholder="a causal run (modbias causal knockout|patch|dla|lens)",
                         style={"minWidth": "420px"}),
            dcc.RadioItems(id=SUBSET, options=["all", "video_aligned", "audio_aligned"], value="all", inline=True),
            html.Label(["τ (Eq. 7) ", dcc.Input(id=TAU, type="number", value=1.0, step=0.1, debounce=True,
                                                style={"width": "70px"})]),
        ], className="controls"),
        html.P(id=NOTE, className="note"),
        dcc.Graph(id=GRAPH),
    ])


def _chosen(ds, subset: str):
    if subset == "all":
        return ds
    ds = ds.where(ds.subset == subset, drop=True)
    if not ds.sizes.get("sample"):
        raise StoreFieldError(f"{ds.attrs.get('path')} has no {subset} samples")
    return ds


def knockout_figure(ds, title: str) -> go.Figure:
    """Mean change of LD per window start, one line per blocked modality.

    Args:
        ds: a knockout run (``knockout_delta`` (sample, modality, layer)), already cut to the chosen samples.
        title: the figure's title.

    Returns:
        The figure: x the window's first layer, y the mean Δ LD over samples.
    """
    delta = ds.knockout_delta.mean("sample", skipna=True)
    fig = go.Figure()
    for modality in delta.modality.values.tolist():
        fig.add_scatter(x=delta.layer.values if "layer" in delta.coords else np.arange(delta.sizes["layer"]),
                        y=delta.sel(modality=modality).values, mode="lines+markers", name=f"{modality} blocked",
                        line={"color": COLOURS.get(modality)})
    window = ds.attrs["config"]["parameters"].get("window")
    fig.update_layout(xaxis_title=f"first layer of the knockout window (w={window})",
                      yaxis_title="mean Δ LD (log p(audio cue) − log p(visual cue))", template="plotly_white")
    return set_title(fig, title)


def lens_figure(ds, title: str) -> go.Figure:
    """Mean LD read through the logit lens at each layer.

    Args:
        ds: a lens run (``lens_logit_diff`` (sample, layer)), already cut to the chosen samples.
        title: the figure's title.

    Returns:
        The figure: x the layer, y the mean LD over samples.
    """
    ld = ds.lens_logit_diff.mean("sample", skipna=True)
    fig = go.Figure(go.Scatter(x=np.arange(ld.sizes["layer"]), y=ld.values, mode="lines+markers", name="LD"))
    fig.update_layout(xaxis_title="layer", yaxis_title="mean LD through the lens", template="plotly_white")
    return set_title(fig, title)


def heads_pair_figure(ds, tau: float, title: str) -> go.Figure:
    """Per-head effect (left) and log10 c_h (right, Eq. 5) heatmaps; H_bias at ``tau`` (Eq. 7) outlined on both.

    c_h and H_bias come from the samples' mean attention sums (:func:`modbias.analysis.causal.pooled_ratio`);
    log10 c_h is clipped to [−3, 3] for the colours.

    Args:
        ds: a patch or dla run, already cut to the chosen samples.
        tau: the threshold τ of Eq. 7.
        title: the figure's title.

    Returns:
        The figure with two ``[layer, head]`` heatmaps.
    """
    name = effect_of(ds)
    effect = head_map(ds, name).values
    c_h, biased = pooled_ratio(ds, tau)
    with np.errstate(divide="ignore"):
        log_ratio = np.log10(c_h.values)
    fig = make_subplots(1, 2, subplot_titles=(name, "log10 c_h (Eq. 5)"), horizontal_spacing=0.12)
    heads, layers = np.arange(effect.shape[1]), np.arange(effect.shape[0])
    fig.add_trace(go.Heatmap(z=effect, x=heads, y=layers, colorscale="RdBu_r", zmid=0, name=name,
                             colorbar=dict(x=0.44, title=name), hovertemplate="layer %{y}, head %{x}: %{z:.3g}"
                                                                              "<extra></extra>"), 1, 1)
    fig.add_trace(go.Heatmap(z=np.clip(log_ratio, -3, 3), x=heads, y=layers, colorscale="RdBu_r", zmid=0,
                             name="log10 c_h", hovertemplate="layer %{y}, head %{x}: %{z:.3g}<extra></extra>"), 1, 2)
    if biased.values.any():
        for xref, yref in (("x", "y"), ("x2", "y2")):
            fig.add_shape(type="path", path=cell_path(biased.values.astype(bool)), xref=xref, yref=yref,
                          line=dict(color="black", width=2))
    fig.update_layout(height=max(420, 14 * len(layers) + 200), template="plotly_white")
    fig.update_xaxes(title="head", tickvals=list(heads))
    fig.update_yaxes(title="layer", tickvals=list(layers))
    return set_title(fig, title, subplot_titles=True)


def causal_figure(path: str, subset: str, tau: float) -> tuple[go.Figure, str]:
    """The figure of a causal run for the chosen samples, and a one-line note.

    Args:
        path: a causal run store (kind ``knockout``, ``lens``, ``patch`` or ``dla``).
        subset: ``"all"`` or a subset; a run without samples of it raises :class:`StoreFieldError`.
        tau: the threshold τ of Eq. 7 (patch and dla runs).

    Returns:
        ``(figure, note)``.
    """
    ds = _chosen(open_dataset(path), subset)
    kind = ds.attrs["kind"]
    at = ds.attrs["config"]["parameters"]["at"]
    title = f"{path}: {kind} at the {at} emotion step, {subset} ({ds.sizes['sample']} samples)"
    if kind == "knockout":
        flipped = float(ds.knockout_flipped.mean().values)
        return knockout_figure(ds, title), f"LD changes sign in {flipped:.0%} of (sample, modality, window) cases."
    if kind == "lens":
        return lens_figure(ds, title), "The last layer's value is the model's own LD."
    fig = heads_pair_figure(ds, float(tau), title)
    return fig, f"Outlined: H_bias at τ={float(tau):g} (Eq. 7) from the chosen samples' mean attention sums."


@shows_errors
def causal_view(path: str | None, subset: str, tau):
    """The Causal tab's callback: :func:`causal_figure`, or a message where there is no run or it lacks a field.

    Args:
        path: the chosen causal run (``None``: a message asks for one).
        subset: ``"all"`` or a subset.
        tau: τ of Eq. 7 (``None``, an emptied input: 1).

    Returns:
        ``(figure, note)``.
    """
    if not path:
        raise StoreFieldError("No causal run in the cache: run `modbias causal patch --limit 30` first.")
    return causal_figure(path, subset, 1.0 if tau is None else tau)


def register(app, cache: str) -> None:
    """Causal callback: the graph and note follow the tab's run, subset and τ.

    Args:
        app: the dashboard that gets the callback.
        cache: the run stores' folder; the callback refuses any path outside it.
    """
    app.callback(Output(GRAPH, "figure"), Output(NOTE, "children"),
                 Input(RUN, "value"), Input(SUBSET, "value"), Input(TAU, "value"))(in_cache(cache, causal_view))
