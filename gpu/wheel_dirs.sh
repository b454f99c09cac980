# Sourced by gpu/run.sh, gpu/step.sh and gpu/splt_probe.sh. wheel_dirs lib|include prints the NVIDIA Python wheels'
# folders (site-packages/nvidia/*/lib or */include, where cuBLAS, cuSPARSELt and libcudart live on the lent machine's
# image), colon-separated, or nothing when python3 finds none.
wheel_dirs() {
  python3 - "$1" <<'PY' 2>/dev/null
import glob, os, site, sys
kind = sys.argv[1]
roots = set()
try: roots.update(site.getsitepackages())
except Exception: pass
try: roots.add(site.getusersitepackages())
except Exception: pass
try:
    import nvidia
    roots.update(os.path.dirname(p) for p in nvidia.__path__)
except Exception: pass
out = []
for r in sorted(roots):
    for d in sorted(glob.glob(os.path.join(r, "nvidia", "*", kind))):
        if d not in out: out.append(d)
print(":".join(out))
PY
}
