"""tapeless: a compiler for differentiable Python."""

from . import dynamic  # noqa: F401  (J-callables made at run time)
from .api import config, ir, jit
from .custom import checkpoint, checkpoint_policies, custom_jvp, custom_vjp
from .errors import CompileError, GradError, TapelessError
from .fwd_api import hessian, jacfwd, jacrev, jvp, linearize, stop_gradient
from .grad_api import grad, value_and_grad, vjp
from .runtime import checkpoint_name
from .tree import tree_leaves, tree_map, tree_structure, tree_unflatten
from .vmap_api import vmap

__all__ = ["CompileError", "GradError", "TapelessError", "checkpoint", "checkpoint_name",
           "checkpoint_policies", "config", "custom_jvp",
           "custom_vjp", "grad", "hessian", "ir", "jacfwd", "jacrev", "jit", "jvp", "vmap",
           "linearize", "stop_gradient", "tree_leaves", "tree_map", "tree_structure",
           "tree_unflatten", "value_and_grad", "vjp"]
__version__ = "0.1.0"
