"""Which words decided a prediction: per-token attributions of the predicted class.

`explain_texts(classifier, texts)` (also `TextClassifier.explain` and `seqclf explain`) gives
each token of each text a weight: how much the predicted class's probability depends on it.
Three methods:

* `"occlusion"` (the default): the weight of a token is the predicted class's probability on
  the text minus its probability on the text with that token deleted. It reads the whole model
  as it serves, raw strings in (tokenizer, the linear n-gram path, the recurrent path and their
  blend), and a weight is a difference of probabilities, in the model's own units. A text of
  n tokens costs n + 1 forward passes, run in batches.
* `"gradient_x_input"`: the gradient of the predicted class's probability with respect to the
  token's embedding, dotted with the embedding (the first recurrent layer's input, watched by
  `seqclf.gradients.timestep_probe.watching_inputs`, the machinery of the gradient-by-position
  pictures).
* `"integrated_gradients"`: the same, averaged along the straight path from all-zero
  embeddings to the real ones (`steps` points, midpoint rule), so that the weights of a text
  add up to about its probability's change from that baseline.

The two gradient methods see only the recurrent path: a model with the linear n-gram path
(the default `seqclf train` model) reads n-grams of token ids, which have no gradient, so for
it they are refused rather than silently explaining half the model. Occlusion was chosen as
the default by a deletion test of faithfulness (`bench/explain_faithfulness.py`, numbers in
`bench/explain_faithfulness.md`): deleting the tokens it ranks highest lowers the predicted
class's probability more than deleting those the gradient methods pick on the word-order data,
as much on SST-2, and far more than a random ranking.

Tokens are the model's: lower-cased, punctuation stripped, split on whitespace. Only the first
`max_length` tokens are read by the model; later ones get weight 0. A text without words gets
no tokens (its prediction is the model's answer to no words).
"""

import dataclasses
import weakref

import numpy as np

from seqclf._checks import check_positive_int
from seqclf.errors import SeqclfError
from seqclf.models.token_rows import pad_rows, probabilities, tokenize
from seqclf.names import EXPLAIN_METHODS

METHODS = EXPLAIN_METHODS


@dataclasses.dataclass
class Explanation:
    """The attribution of one text's prediction.

    Attributes:
        text: the text as given.
        tokens: its tokens as the model reads them.
        weights: one per token: positive when the token supports the predicted label.
        label: the predicted label; `probability` its probability.
        method: how the weights were computed (`METHODS`).
    """

    text: str
    tokens: list
    weights: list
    label: str
    probability: float
    method: str

    def as_dict(self):
        return {"text": self.text, "label": self.label, "probability": self.probability,
                "method": self.method,
                "tokens": [{"token": t, "weight": w} for t, w in zip(self.tokens, self.weights)]}

    def __str__(self):
        words = " ".join(f"{t}({w:+.2f})" for t, w in zip(self.tokens, self.weights))
        return f"{self.label} ({self.probability:.2f}): {words or '(no words)'}"


def explain_texts(classifier, texts, *, method="occlusion", batch_size=256, steps=32):
    """Per-token attributions of `classifier`'s predicted class for each of `texts`.

    Args:
        classifier: a `TextClassifier`.
        texts: a list of strings.
        method: `"occlusion"`, `"gradient_x_input"` or `"integrated_gradients"` (see the module
            docstring; the gradient methods need a recurrent model without the n-gram path).
        batch_size: token sequences per forward pass.
        steps: points on the integrated-gradients path.

    Returns one `Explanation` per text, in order.
    """
    if isinstance(texts, (str, bytes)):
        # Iterating one string would explain each of its characters.
        raise SeqclfError(f"`texts` must be a list of texts. Received: texts={texts!r:.80}")
    if method not in METHODS:
        raise SeqclfError(f"Unknown attribution method. Expected one of: {', '.join(METHODS)}. "
                          f"Received: method={method!r}")
    check_positive_int("batch_size", batch_size)
    check_positive_int("steps", steps)
    texts = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in texts]
    if not texts:
        return []
    tokens, ids = tokenize(classifier.preprocessor, texts)
    max_length = classifier.preprocessor.max_length
    seen = [row[:max_length] for row in ids]
    probs = probabilities(classifier, seen, batch_size)
    predicted = probs.argmax(axis=1)
    if method == "occlusion":
        read = _occlusion(classifier, ids, seen, probs, predicted, batch_size)
    else:
        read = _gradients(classifier, seen, predicted, method, batch_size, steps)
    out = []
    for text, toks, w, k, p in zip(texts, tokens, read, predicted, probs):
        # Tokens beyond `max_length` are not read: weight 0.
        weights = [float(v) for v in w] + [0.0] * (len(toks) - len(w))
        out.append(Explanation(text, toks, weights, classifier.label_names[k], float(p[k]),
                               method))
    return out


def _occlusion(classifier, ids, seen, probs, predicted, batch_size):
    max_length = classifier.preprocessor.max_length
    variants = []
    for t, row in enumerate(ids):
        for i in range(len(seen[t])):
            # Deleted from the whole text, then cut: a later token moves in, as it would if
            # the user had deleted the word.
            variants.append((row[:i] + row[i + 1 :])[:max_length])
    weights = [np.zeros(len(s)) for s in seen]
    if not variants:
        return weights
    without = probabilities(classifier, variants, batch_size)
    position = 0
    for t, s in enumerate(seen):
        k = predicted[t]
        n = len(s)
        weights[t] = probs[t, k] - without[position : position + n, k]
        position += n
    return weights


def _gradients(classifier, seen, predicted, method, batch_size, steps):
    fn = _gradient_fn(classifier)
    alphas = (np.array([1.0]) if method == "gradient_x_input"
              else (np.arange(steps) + 0.5) / steps)
    weights = [np.zeros(len(s)) for s in seen]
    order = np.argsort([len(r) for r in seen], kind="stable")
    for start in range(0, len(seen), batch_size):
        part = order[start : start + batch_size]
        batch = pad_rows([seen[i] for i in part])
        classes = predicted[part].astype("int64")
        total = 0.0
        for a in alphas:
            embedded, grads = fn(batch, classes, np.float32(a))
            total = total + grads.numpy()
        # The watched tensor is alpha * embedding: divide alpha out for the embedding itself.
        contribution = (embedded.numpy() / alphas[-1] * total / len(alphas)).sum(axis=-1)
        for j, i in enumerate(part):
            weights[i] = contribution[j, : len(seen[i])]
    return weights


# Compiled gradient functions per backbone: tracing a recurrent model costs about a second.
_GRADIENT_FNS = weakref.WeakKeyDictionary()


def _gradient_fn(classifier):
    """A compiled `(ids, classes, alpha) -> (alpha * embeddings, d p_class / d them)` on the
    first recurrent layer's input; refused for models the gradient does not fully explain."""
    if classifier.backbone in _GRADIENT_FNS:
        return _GRADIENT_FNS[classifier.backbone]
    import tensorflow as tf

    from seqclf.gradients.timestep_probe import recurrent_layers, watching_inputs
    from seqclf.models.logit_blend import LogitBlend
    from seqclf.models.ngram_linear import NgramLinear

    backbone = classifier.backbone
    # A linear path held by a blend that gives it no weight is not part of the model's output.
    if any(isinstance(layer, NgramLinear)
           or (isinstance(layer, LogitBlend) and layer.linear is not None
               and layer.linear_weight > 0)
           for layer in _all_layers(backbone)):
        raise SeqclfError(
            "Gradient attributions see only the recurrent path, and this model also has the "
            "linear n-gram path (ids, no gradient); use method='occlusion', which reads the "
            "whole model. Received: a model with an NgramLinear layer"
        )
    targets = recurrent_layers(backbone)
    if not targets:
        model = classifier.settings.get("model")
        raise SeqclfError("Gradient attributions need a recurrent layer; use "
                          f"method='occlusion'. Received: model={model!r}")
    first = targets[:1]

    @tf.function(reduce_retracing=True)
    def fn(ids, classes, alpha):
        captured = {}
        with tf.GradientTape() as tape:
            with watching_inputs(first, tape, captured, transform=lambda x: x * alpha):
                probs = backbone(ids, training=False)
            target = tf.reduce_sum(tf.gather(probs, classes, axis=1, batch_dims=1))
        embedded = captured[first[0].name][0]
        return embedded, tape.gradient(target, embedded)

    _GRADIENT_FNS[backbone] = fn
    return fn


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def _scale(explanations):
    """One colour scale for all texts: the largest weight magnitude (so texts compare)."""
    return max((abs(w) for e in explanations for w in e.weights), default=0.0) or 1.0


def to_html(explanations):
    """A standalone HTML page: each text as a line of its tokens, shaded green where a token
    supports the predicted label and red where it speaks against it (one scale for all)."""
    import html

    scale = _scale(explanations)
    lines = []
    for e in explanations:
        spans = []
        for token, w in zip(e.tokens, e.weights):
            rgb = "0,150,60" if w >= 0 else "210,40,40"
            spans.append(f'<span style="background:rgba({rgb},{abs(w) / scale:.3f})" '
                         f'title="{w:+.4f}">{html.escape(token)}</span>')
        lines.append(f"<p><b>{html.escape(e.label)}</b> ({e.probability:.2f}): "
                     f"{' '.join(spans) or '<i>(no words)</i>'}</p>")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>seqclf explain"
            "</title></head>\n<body style=\"font-family:sans-serif;line-height:1.8\">\n"
            + "\n".join(lines) + "\n</body></html>\n")


def plot_heat_lines(explanations, path):
    """Draws each text as a heat line (one cell per token, green for, red against the predicted
    label, one scale for all texts) into a PNG at `path`, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from seqclf._io import atomic_path

    scale = _scale(explanations)
    width = max([len(e.tokens) for e in explanations] + [1])
    fig, axes = plt.subplots(len(explanations), 1, squeeze=False,
                             figsize=(max(4.0, 0.7 * width), 1.3 * len(explanations)))
    for ax, e in zip(axes[:, 0], explanations):
        ax.imshow(np.array([e.weights or [0.0]]), cmap="RdYlGn", vmin=-scale, vmax=scale,
                  aspect="auto")
        ax.set_yticks([])
        ax.set_xticks(range(len(e.tokens)), e.tokens, rotation=45, ha="right", fontsize=9)
        ax.set_title(f"{e.label} ({e.probability:.2f})", fontsize=9, loc="left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path
