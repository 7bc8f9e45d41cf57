"""The PyTorch features that differ across the versions ``setup.cfg``
admits (torch 2.1 to the newest), looked up once, so that the rest of the
package asks for a feature rather than for a version.

==========================  ==========================================
feature                     where it exists
==========================  ==========================================
``torch.library``           torch >= 2.4: the op gets fake kernels and
``register_fake`` /         an autograd formula through the library, so
``register_autograd``       ``torch.compile(fullgraph=True)`` and
                            ``opcheck`` see through it. Older torch: the
                            same formula as an ``Autograd`` kernel; a
                            compiled loss runs the op eagerly (a graph
                            break), with the same numbers.
``torch.compiler``          torch >= 2.3; ``torch._dynamo.is_compiling``
``.is_compiling``           before (the same flag).
compiled device asserts     torch >= 2.9: Inductor compiles
                            ``torch._assert_async`` into the kernel, so a
                            value check (a label out of range) raises in
                            compiled code. Before, Inductor drops it:
                            our value checks then break the graph and run
                            eagerly (:func:`mmdet_lossplug.input_checks
                            .check_without_sync`), so ``fullgraph=True``
                            over a loss needs torch >= 2.9.
safe globals by name        torch >= 2.6: ``weights_only=True`` loads with
(``add_safe_globals`` with  allowed globals; older torch: a restricted
``(object, name)`` pairs)   unpickler with the same list
                            (:mod:`mmdet_lossplug.engine.safe_checkpoint`).
==========================  ==========================================
"""
import torch

HAS_LIBRARY_FAKE_KERNELS = hasattr(torch.library, 'register_fake')
HAS_SAFE_GLOBALS_BY_NAME = torch.__version__ >= (2, 6)
HAS_COMPILED_ASSERTS = torch.__version__ >= (2, 9)

try:
    from torch.compiler import is_compiling  # torch >= 2.3
except ImportError:
    from torch._dynamo import is_compiling

__all__ = [
    'HAS_COMPILED_ASSERTS', 'HAS_LIBRARY_FAKE_KERNELS',
    'HAS_SAFE_GLOBALS_BY_NAME', 'is_compiling'
]
