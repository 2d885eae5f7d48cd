# Sourced (from the repository root) by the scripts that run on the lent GPU
# machine. cudarc loads libnvrtc / libcublas at run time: this puts the
# toolkit's lib64 and the image's pip wheels (nvidia/cu13/lib), whichever
# exist, on LD_LIBRARY_PATH, and keeps compiled kernels in one cache
# (METALLIC_KERNEL_CACHE where the caller set it, e.g. to a carried cache).
export RUST_BACKTRACE=1 METALLIC_KERNEL_CACHE=${METALLIC_KERNEL_CACHE:-/tmp/metallic-kernels}
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
    $(python3 -c 'import nvidia, os; [print(os.path.join(p, "cu13", "lib")) for p in nvidia.__path__]' 2>/dev/null); do
    [ -d "$d" ] && LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export LD_LIBRARY_PATH
