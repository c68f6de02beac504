# Sourced by the scripts: the project's venv on PATH, and scikit-learn's data folder pointed at
# ../shared/scikit_learn_data when that offline copy exists and SCIKIT_LEARN_DATA is not set.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$root/.venv/bin:$PATH"
if [ -z "${SCIKIT_LEARN_DATA:-}" ] && [ -f "$root/../shared/scikit_learn_data/cal_housing_py3.pkz" ]; then
  export SCIKIT_LEARN_DATA="$root/../shared/scikit_learn_data"
fi
