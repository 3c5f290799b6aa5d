"""Run by torchrun in the 2-process extraction test: extract the synthetic folder into a cache.

    python -m torch.distributed.run --standalone --nproc-per-node 2 eval_two_process_worker.py ROOT CACHE_DIR
"""

import sys
from pathlib import Path

from accelerate import Accelerator
from eval_testing import extract_synthetic

if __name__ == "__main__":
    accelerator = Accelerator(cpu=True)
    if accelerator.num_processes != 2:
        raise SystemExit(f"expected 2 processes, got {accelerator.num_processes}")
    extract_synthetic(Path(sys.argv[1]), Path(sys.argv[2]), accelerator)
    accelerator.end_training()  # leave the process group, as fusion-eval does
