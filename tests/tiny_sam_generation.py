"""genPseudoMasks.py with the tests' scaled-down SAM registered as --sam_model tiny, as a module that torchrun can
start (`torchrun -m tests.tiny_sam_generation ...`, tests/test_distributed.py): a registration made inside pytest
does not reach torchrun's processes."""
import genPseudoMasks
from utils.engine.runtime import run_script
from utils.pseudo_masks import SAM_MODELS, SamArchitecture

# The released models' structure, small enough for the CPU: 64-pixel inputs, two encoder blocks.
TINY = SamArchitecture(embed_dim=32, depth=2, num_heads=2, global_attn_indexes=(1,), image_size=64, window_size=2,
                       prompt_dim=32, decoder_mlp_dim=64, decoder_heads=2)

if __name__ == '__main__':
    SAM_MODELS['tiny'] = TINY
    run_script(genPseudoMasks.main, genPseudoMasks.get_args_parser())
