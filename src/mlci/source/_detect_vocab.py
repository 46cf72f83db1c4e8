"""What a fully qualified name means to detection: a model, a layer, a wrapper or a utility of a framework.

Pure tables and one function, `classify`; no framework is ever imported (detection reads code, never runs it).
"""
from __future__ import annotations

from dataclasses import dataclass

# Frameworks that have an image; anything else that trains is "unsupported" unless [images] maps it.
SUPPORTED = ("keras", "torch", "sklearn")

# Libraries that train models but have no mlci image: found name -> architecture to report.
UNSUPPORTED = {
    "xgboost": "classical", "lightgbm": "classical", "catboost": "classical", "statsmodels": "classical",
    "h2o": "classical", "prophet": "classical", "fbprophet": "classical", "surprise": "classical",
    "river": "classical", "pmdarima": "classical", "sktime": "classical", "pyspark": "classical",
    "jax": "ann", "flax": "ann", "haiku": "ann", "optax": "ann", "mxnet": "ann", "gluonts": "ann",
    "paddle": "ann", "chainer": "ann", "theano": "ann", "lasagne": "ann", "cntk": "ann", "tflearn": "ann",
    "caffe": "cnn", "dynet": "ann", "mindspore": "ann", "oneflow": "ann", "pybrain": "ann", "neupy": "ann",
    "sknn": "ann", "gensim": "ann", "fasttext": "ann", "spacy": "ann",
}
# Data containers of those libraries: capitalised, but not models.
_NOT_MODELS = {"DMatrix", "Dataset", "Pool", "DataFrame", "Booster", "DeviceQuantileDMatrix", "QuantileDMatrix"}

# Names people use without importing them in this file (notebooks, star imports of helpers).
DEFAULT_ALIASES = {"tf": "tensorflow", "keras": "keras", "torch": "torch", "nn": "torch.nn",
                   "sklearn": "sklearn", "xgb": "xgboost", "lgb": "lightgbm"}

KERAS_PREFIXES = ("tensorflow.compat.v1.keras.", "tensorflow.compat.v2.keras.", "tensorflow.python.keras.",
                  "tensorflow.keras.", "tf_keras.", "keras.")

KERAS_MODELS = {"Sequential", "Model", "Functional"}
KERAS_LOADERS = {"load_model", "model_from_json", "model_from_yaml", "model_from_config", "clone_model"}
KERAS_UTIL_MODULES = {"datasets", "utils", "preprocessing", "callbacks", "optimizers", "losses", "metrics",
                      "backend", "regularizers", "initializers", "activations", "constraints", "ops",
                      "mixed_precision", "saving", "config", "random", "export", "dtype_policies", "tree"}
SCIKERAS = {"KerasClassifier", "KerasRegressor"}

CONV_WEAK = ("MaxPooling2D", "MaxPooling3D", "MaxPool2D", "MaxPool3D", "AveragePooling2D", "AveragePooling3D",
             "AvgPool2D", "AvgPool3D", "GlobalMaxPooling2D", "GlobalAveragePooling2D", "GlobalMaxPool2D",
             "GlobalAveragePooling3D", "GlobalAvgPool2D", "ZeroPadding2D", "Cropping2D", "UpSampling2D",
             "UpSampling3D", "ZeroPadding3D", "MaxPool2d", "MaxPool3d", "AvgPool2d", "AvgPool3d",
             "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "max_pool", "max_pool2d", "avg_pool", "avg_pool2d",
             "max_pooling2d", "average_pooling2d")
RECURRENT = ("LSTM", "GRU", "SimpleRNN", "RNN", "CuDNNLSTM", "CuDNNGRU", "LSTMCell", "GRUCell",
             "SimpleRNNCell", "StackedRNNCells", "RNNCell", "Bidirectional")
SKLEARN_ESTIMATOR_MODULES = {
    "ensemble", "linear_model", "svm", "tree", "neighbors", "naive_bayes", "discriminant_analysis",
    "gaussian_process", "kernel_ridge", "isotonic", "dummy", "semi_supervised", "cluster", "mixture",
    "cross_decomposition", "neural_network", "covariance", "multiclass", "multioutput", "calibration",
    "qda", "lda", "cross_validation", "grid_search"}
SKLEARN_TRANSFORMER_MODULES = {"preprocessing", "decomposition", "manifold", "feature_extraction",
                               "feature_selection", "impute", "kernel_approximation", "random_projection",
                               "compose"}
SKLEARN_WRAPPERS = {"GridSearchCV", "RandomizedSearchCV", "HalvingGridSearchCV", "HalvingRandomSearchCV",
                    "Pipeline", "make_pipeline", "OneVsRestClassifier", "OneVsOneClassifier",
                    "OutputCodeClassifier", "MultiOutputClassifier", "MultiOutputRegressor",
                    "ClassifierChain", "RegressorChain", "CalibratedClassifierCV", "TransformedTargetRegressor",
                    "BaggingClassifier", "BaggingRegressor", "AdaBoostClassifier", "AdaBoostRegressor",
                    "VotingClassifier", "VotingRegressor", "StackingClassifier", "StackingRegressor",
                    "SelfTrainingClassifier", "RFE", "RFECV", "SelectFromModel", "SequentialFeatureSelector"}
# Wrappers that are not models themselves: only what they wrap is trained.
SEARCH_WRAPPERS = {"GridSearchCV", "RandomizedSearchCV", "HalvingGridSearchCV", "HalvingRandomSearchCV",
                   "Pipeline", "make_pipeline"}
# Functions whose first argument (or `estimator=`) gets fitted.
SKLEARN_TRAIN_FUNCTIONS = {"cross_val_score", "cross_validate", "cross_val_predict", "learning_curve",
                           "validation_curve", "permutation_test_score"}
TORCH_MODELS = {"Module", "Sequential", "ModuleList", "ModuleDict", "LightningModule"}


@dataclass(frozen=True)
class Symbol:
    """What a qualified name is: `role` is model | layer | wrapper | transformer | train | util."""

    framework: str  # keras | torch | sklearn | an UNSUPPORTED name
    role: str
    name: str  # the qualified name, for evidence
    arch: str | None = None  # cnn | rnn | ann | classical, when the name alone says it
    weak: bool = False  # pooling without convolution: a hint, not proof


def keras_rest(qualname: str) -> str | None:
    """`tensorflow.keras.layers.Conv2D` -> `layers.Conv2D`; None when the name is not Keras."""
    for prefix in KERAS_PREFIXES:
        if qualname.startswith(prefix):
            return qualname[len(prefix):]
    if qualname.startswith("scikeras."):
        return "wrappers." + qualname.rsplit(".", 1)[-1]
    return None


def layer_arch(last: str) -> tuple[str | None, bool]:
    """Architecture a layer name implies, and whether that is only a weak hint."""
    lowered = last.lower()
    if lowered.startswith(("conv", "separableconv", "depthwiseconv", "atrousconv", "deconv", "locallyconnected",
                           "lazyconv", "separable_conv", "depthwise_conv")):
        return "cnn", False
    if last in CONV_WEAK:
        return "cnn", True
    if last in RECURRENT or lowered in ("dynamic_rnn", "static_rnn", "bidirectional_dynamic_rnn",
                                        "basiclstmcell", "lstmblockcell", "grublockcell", "basicrnncell"):
        return "rnn", False
    if last in ("Dense", "Linear", "LazyLinear", "Bilinear", "dense", "fully_connected", "linear"):
        return "ann", False
    return None, False


def _classify_keras(rest: str, qualname: str) -> Symbol | None:
    parts = rest.split(".")
    if parts[0] == "src" and len(parts) > 1:  # Keras 3 internal paths: keras.src.layers.Conv2D
        parts = parts[1:]
    first, last = parts[0], parts[-1]
    if not last:
        return None
    if first == "applications":
        if len(parts) > 1 and last[:1].isupper():
            return Symbol("keras", "model", qualname, "cnn")
        return Symbol("keras", "util", qualname)
    if last in KERAS_MODELS and first in ("models", "Sequential", "Model", "Functional", "engine"):
        return Symbol("keras", "model", qualname)
    if last in KERAS_LOADERS:
        return Symbol("keras", "model", qualname)
    if first == "wrappers" or last in SCIKERAS:
        if last in SCIKERAS:
            return Symbol("keras", "wrapper", qualname)
        return Symbol("keras", "util", qualname)
    if first in KERAS_UTIL_MODULES:
        return Symbol("keras", "util", qualname)
    if first == "layers" or (len(parts) == 1 and last[:1].isupper()):
        arch, weak = layer_arch(last)
        if last[:1].isupper():
            return Symbol("keras", "layer", qualname, arch, weak)
        return Symbol("keras", "util", qualname)
    return Symbol("keras", "util", qualname)


def _classify_tensorflow(qualname: str) -> Symbol:
    """Low-level TensorFlow (graph code, tf.layers, estimators): it runs in the Keras/TensorFlow image."""
    parts = qualname.split(".")
    last = parts[-1]
    if ("estimator" in parts or "learn" in parts) and last[:1].isupper() \
            and last.endswith(("Classifier", "Regressor", "Estimator")):
        return Symbol("keras", "model", qualname, "classical" if last.startswith(("Linear", "BoostedTrees"))
                      else "ann")
    if any(p in parts for p in ("nn", "layers", "contrib", "slim", "rnn", "rnn_cell")):
        arch, weak = layer_arch(last)
        if arch is None and last.lower() in ("conv2d", "conv1d", "conv3d"):
            arch = "cnn"
        if arch is not None:
            return Symbol("keras", "layer", qualname, arch, weak)
    if last in ("Session", "InteractiveSession", "GradientTape") or (
            "train" in parts and last.endswith("Optimizer")):
        return Symbol("keras", "train", qualname)
    return Symbol("keras", "util", qualname)


def _classify_torch(qualname: str) -> Symbol | None:
    parts = qualname.split(".")
    last = parts[-1]
    top = parts[0]
    if top in ("torchvision", "timm") and ("models" in parts or last == "create_model"):
        if last[:1].islower() and last not in ("list_models", "models") or last[:1].isupper() and len(parts) > 2:
            return Symbol("torch", "model", qualname, "cnn")
        return Symbol("torch", "util", qualname)
    if top in ("pytorch_lightning", "lightning"):
        if last == "LightningModule":
            return Symbol("torch", "model", qualname)
        if last == "Trainer":
            return Symbol("torch", "train", qualname)
        return Symbol("torch", "util", qualname)
    if top == "fastai":
        if last in ("cnn_learner", "vision_learner", "unet_learner"):
            return Symbol("torch", "model", qualname, "cnn")
        if last in ("tabular_learner", "collab_learner"):
            return Symbol("torch", "model", qualname, "ann")
        if last in ("text_classifier_learner", "language_model_learner"):
            return Symbol("torch", "model", qualname, "rnn")
        return Symbol("torch", "util", qualname)
    if top == "skorch":
        if last.startswith("NeuralNet"):
            return Symbol("torch", "wrapper", qualname)
        return Symbol("torch", "util", qualname)
    if len(parts) >= 2 and parts[1] == "nn":
        if last in TORCH_MODELS:
            return Symbol("torch", "model", qualname)
        arch, weak = layer_arch(last)
        if arch is None and len(parts) > 2 and parts[2] == "functional" and last in ("conv1d", "conv2d", "conv3d"):
            arch = "cnn"
        if last[:1].isupper() or arch:
            return Symbol("torch", "layer", qualname, arch, weak)
        return Symbol("torch", "util", qualname)
    if len(parts) >= 2 and parts[1] == "optim":
        return Symbol("torch", "train", qualname)
    return Symbol("torch", "util", qualname)


def _classify_sklearn(qualname: str) -> Symbol:
    parts = qualname.split(".")
    last = parts[-1]
    module = parts[1] if len(parts) > 2 else ""
    if last in SKLEARN_TRAIN_FUNCTIONS:
        return Symbol("sklearn", "train", qualname)
    if last in SKLEARN_WRAPPERS:
        return Symbol("sklearn", "wrapper", qualname, "classical")
    if not last[:1].isupper():
        return Symbol("sklearn", "util", qualname)
    if last.startswith("MLP"):
        return Symbol("sklearn", "model", qualname, "ann")
    if module in SKLEARN_ESTIMATOR_MODULES or (not module and last.endswith(
            ("Classifier", "Regressor", "SVC", "SVR", "Regression", "NB", "Means", "Clustering"))):
        return Symbol("sklearn", "model", qualname, "classical")
    if module in SKLEARN_TRANSFORMER_MODULES:
        return Symbol("sklearn", "transformer", qualname, "classical")
    return Symbol("sklearn", "util", qualname)


def _classify_transformers(qualname: str) -> Symbol:
    """Hugging Face: PyTorch models unless the class says TF (TFBertModel runs on TensorFlow/Keras)."""
    parts = [part for part in qualname.split(".") if part not in ("from_pretrained", "from_config")]
    last = parts[-1]
    framework = "keras" if last.startswith("TF") else "torch"
    if last in ("Trainer", "Seq2SeqTrainer"):
        return Symbol("torch", "train", qualname)
    if last[:1].isupper() and ("Model" in last or "For" in last) and not last.endswith(("Config", "Output")):
        return Symbol(framework, "model", qualname, "ann")
    return Symbol(framework, "util", qualname)


def classify(qualname: str | None) -> Symbol | None:
    """The meaning of a resolved name such as `tensorflow.keras.layers.Conv2D`; None for anything else."""
    if not qualname:
        return None
    rest = keras_rest(qualname)
    if rest is not None:
        return _classify_keras(rest, qualname)
    top = qualname.split(".", 1)[0]
    if top in ("tensorflow", "tf"):
        return _classify_tensorflow(qualname)
    if top in ("torch", "torchvision", "timm", "pytorch_lightning", "lightning", "fastai", "skorch"):
        return _classify_torch(qualname)
    if top == "sklearn":
        return _classify_sklearn(qualname)
    if top == "imblearn":
        last = qualname.rsplit(".", 1)[-1]
        if "pipeline" in qualname:
            return Symbol("sklearn", "wrapper", qualname, "classical")
        if last.endswith(("Classifier", "Regressor")):
            return Symbol("sklearn", "model", qualname, "classical")
        return Symbol("sklearn", "transformer", qualname, "classical")
    if top == "transformers":
        return _classify_transformers(qualname)
    if top in UNSUPPORTED:
        last = qualname.rsplit(".", 1)[-1]
        if last in ("train", "cv", "fit") or (last[:1].isupper() and "." in qualname and last not in _NOT_MODELS):
            return Symbol(top, "model", qualname, UNSUPPORTED[top])
        return Symbol(top, "util", qualname, UNSUPPORTED[top])
    return None
