# Source me: puts NVRTC from the `nvidia-cuda-nvrtc` wheel (CUDA 13) on
# LD_LIBRARY_PATH, where the CUDA kernel-compile test (and cudarc's dynamic
# loading) finds it. CI installs the wheel first (.ci/run); with no wheel and
# no CUDA toolkit this does nothing, and that test fails with what to install.
_metallic_nvrtc_dir=$(python3 - <<'PY' 2>/dev/null
import os
try:
    import nvidia.cu13 as m
    print(os.path.join(list(m.__path__)[0], "lib"))
except Exception:
    pass
PY
)
if [ -n "${_metallic_nvrtc_dir}" ] && [ -d "${_metallic_nvrtc_dir}" ]; then
    export LD_LIBRARY_PATH="${_metallic_nvrtc_dir}${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"
fi
unset _metallic_nvrtc_dir
