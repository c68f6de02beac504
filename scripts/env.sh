# Sourced by the scripts: the project's venv first on PATH. (The data needs nothing: scikit-learn
# finds or downloads it in its own folder, ~/scikit_learn_data or $SCIKIT_LEARN_DATA.)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$root/.venv/bin:$PATH"
