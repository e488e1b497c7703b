#!/usr/bin/env bash
# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# Benchmarks of the collection on the local hypervisor; prints one table.
#   bash bench/run.sh            all eight, full sizes (about 15 minutes on a quiet 2-core host)
#   bash bench/run.sh --quick    all eight, small sizes (about 3 minutes on a quiet host)
#   bash bench/run.sh --help     picking benchmarks, sizes, repetitions
# See docs/performance.md for what each measures and the last full results.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
case " $* " in *" -h "*|*" --help "*) exec "$root/.venv/bin/python" bench/run.py --help ;; esac
bash tests/testbed/hypervisor.sh up
bash tests/testbed/build_guest.sh
[ -x "$root/.venv/bin/python" ] || bash scripts/venv.sh
export PATH=$root/.venv/bin:$PATH
exec python bench/run.py "$@"
