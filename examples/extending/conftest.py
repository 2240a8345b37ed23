# pytest loads this file before it reads the suite, so the method and the benchmark
# are registered by the time the suite names them.
import my_benchmark  # noqa: F401
import my_method  # noqa: F401
