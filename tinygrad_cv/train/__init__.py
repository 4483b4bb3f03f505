"""Training: the Learner, its callbacks, the Recorder, the LR finder, checkpoints and mixed precision."""
from .callbacks import (Callback, CancelFitException, CancelStepException, CancelValidException,  # noqa: F401
                        EarlyStoppingCallback, GradientClip, ParamScheduler, SaveModelCallback,
                        TrackerCallback)
from .checkpoint import CheckpointError, load_checkpoint, load_state, save_checkpoint, save_state  # noqa: F401
from .distributed import DataParallel  # noqa: F401
from .learner import Learner, load_learner  # noqa: F401
from .lr_finder import LRFinder, SuggestedLRs  # noqa: F401
from .mixed_precision import LossScaler, MixedPrecision  # noqa: F401
from .progress import ProgressCallback, progress_bar  # noqa: F401
from .recorder import Recorder, SmoothedLoss  # noqa: F401
