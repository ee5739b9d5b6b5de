"""Is a failure perceptual or attentional?  A linear readout of the visual tokens' hidden states.

For each layer l, the hidden states of a sample's visual tokens (the
residual stream after layer l; l = 0 is the projector output) are averaged
into one vector, and a multinomial logistic regression (a linear map,
fitted on training samples) predicts the *visual* emotion from it.  If the
readout names the face's emotion correctly on the video-aligned samples the
model gets wrong, the visual evidence was there in the visual tokens and the
model did not take it up: the failure is attentional (what AR and PAI aim
at).  If the readout is wrong too, the failure is perceptual.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from modbias.core.emotions import CLASSES
from modbias.models.base import ModelAdapter


@torch.no_grad()
def visual_features(model: ModelAdapter, samples, batch_size: int = 64) -> np.ndarray:
    """Per sample and layer, the mean hidden state of the prompt's visual tokens.

    Args:
        model: the adapter.
        samples: the samples (a sequence).
        batch_size: samples per forward.
    Returns:
        ``[N, L+1, d]`` float32 (the embeddings, then every layer's output).
    """
    out = []
    for i in range(0, len(samples), batch_size):
        chunk = samples[i:i + batch_size]
        batch = model.prepare(chunk)
        hidden = model.backbone(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                                position_ids=batch.position_ids, output_hidden_states=True).hidden_states
        stacked = torch.stack(hidden, dim=1).float()  # [B, L+1, T, d]
        for b, layout in enumerate(batch.layouts):
            visual = torch.as_tensor(layout.visual, dtype=torch.long) + int(batch.offsets[b])
            out.append(stacked[b][:, visual].mean(1).cpu().numpy())
    return np.stack(out)


class LinearReadout:
    """Multinomial logistic regression on standardised features (full-batch L-BFGS, L2 ``weight_decay``)."""

    def __init__(self, classes=CLASSES, weight_decay: float = 1e-3, steps: int = 200):
        self.classes, self.weight_decay, self.steps = list(classes), weight_decay, steps

    def fit(self, features: np.ndarray, labels) -> "LinearReadout":
        """Standardise the features and fit the regression.

        Args:
            features: ``[N, d]``.
            labels: N class names, each in ``classes``.
        Returns:
            ``self``.
        """
        x = torch.as_tensor(features, dtype=torch.float64)
        self.mean, self.std = x.mean(0), x.std(0).clamp(min=1e-6)
        x = (x - self.mean) / self.std
        y = torch.tensor([self.classes.index(label) for label in labels])
        self.linear = torch.nn.Linear(x.shape[1], len(self.classes)).double()
        opt = torch.optim.LBFGS(self.linear.parameters(), max_iter=self.steps, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(self.linear(x), y) + self.weight_decay * self.linear.weight.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return self

    @torch.no_grad()
    def predict(self, features: np.ndarray) -> list[str]:
        """The most likely class of each row.

        Args:
            features: ``[N, d]`` (standardised here with the training statistics).
        Returns:
            N class names.
        """
        x = (torch.as_tensor(features, dtype=torch.float64) - self.mean) / self.std
        return [self.classes[i] for i in self.linear(x).argmax(-1).tolist()]


def readout_by_layer(train_features: np.ndarray, train_labels, test_features: np.ndarray, test_labels) -> list[float]:
    """Accuracy of a readout fitted per layer on the training features, on the test features.

    Args:
        train_features: ``[N_train, L+1, d]`` (:func:`visual_features`).
        train_labels: N_train class names.
        test_features: ``[N_test, L+1, d]``.
        test_labels: N_test class names.
    Returns:
        L+1 accuracies in % (NaN with no test samples).
    """
    accuracies = []
    for layer in range(train_features.shape[1]):
        readout = LinearReadout().fit(train_features[:, layer], train_labels)
        hits = np.asarray(readout.predict(test_features[:, layer])) == np.asarray(test_labels)
        accuracies.append(float(hits.mean() * 100) if len(hits) else float("nan"))
    return accuracies
