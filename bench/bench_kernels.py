"""Single kernels: matmul (and each backend's extra matmul paths), linear, activations,
softmax-CE, optimizer updates, plus the reference cases (calibration, GEMM peak)."""
GROUPS = ("kernel", "reference")


def test_kernel(run_case, case, backend_name):
    run_case(case, backend_name)
