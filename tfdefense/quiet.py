"""TensorFlow's C++ start-up lines, kept out of the command line's output.

TensorFlow 2.21 writes notices to stderr while it loads and first touches a device (the CPU
instructions it was built for, oneDNN, "Could not find cuda drivers", a failed ``cuInit`` on
a machine without a GPU) before ``TF_CPP_MIN_LOG_LEVEL`` is read. `import_tensorflow` captures
file descriptor 2 meanwhile and writes back every line that is not one of those notices, so a
real error still shows. Only the ``tfdefense`` command uses it; a library import is untouched.
"""

import os
import re
import sys
import tempfile

NOTICES = re.compile(r"cpu_feature_guard|rebuild TensorFlow with the appropriate compiler|absl::InitializeLog|"
                     r"oneDNN custom operations|cuda drivers|cuInit|cudart_stub|cuda_executor|"
                     r"Unable to register cu(DNN|FFT|BLAS) factory|TF-TRT Warning|computation_placer|"
                     r"AVX2 AVX512F|This TensorFlow binary is optimized")


def import_tensorflow():
    """Imports TensorFlow and lists its devices with the start-up notices filtered out."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (an embedded interpreter): nothing to filter
        import tensorflow  # noqa: F401
        return
    with tempfile.TemporaryFile() as buf:
        os.dup2(buf.fileno(), 2)
        try:
            import tensorflow as tf
            tf.config.list_physical_devices()
            tf.constant(0.0) + 1.0  # the first op prints the CPU-instruction notice
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            buf.seek(0)
            for line in buf.read().decode(errors="replace").splitlines(keepends=True):
                if not NOTICES.search(line):
                    sys.stderr.write(line)
