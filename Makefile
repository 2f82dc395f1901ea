# Quick start: `make demo` (train Light Flow on the built-in synthetic data), `make test` (the test suite, as CI runs it).
# Both create (once) a virtualenv outside the clone, keyed by requirements/constraints.txt's hash: tools/setup_env.sh.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
PY = "$$(bash tools/setup_env.sh | tail -n 1)/bin/python"

.PHONY: env test demo demo-vid benchmark benchmark-data

env:
	bash tools/setup_env.sh

test:
	$(PY) -m pytest -q tests

# First the shipped pretrained weights (lightflow_w0.5_synthetic) on a held-out synthetic pair and, when ../shared/data
# exists, on the real Flying Chairs / Middlebury pairs next to zero flow and OpenCV DIS (work_dirs/demo/pretrained*/:
# colour PNGs, .flo files, an EPE table). Then a short fine-tune of those weights on the built-in synthetic data
# (~8 min on 2 cores): validation EPE (with EPE_zero, the score of predicting no motion) before/during training, colour
# flow PNGs in work_dirs/demo/vis/, then test + demo_flow.py on the held-out pair -> work_dirs/demo/flow/.
DEMO_CFG := configs/lightflow/lightflow_w0.5_1xb8-2k_synthetic.py
DEMO_DIR := work_dirs/demo
PRETRAINED := lightflow_w0.5_synthetic
demo:
	$(PY) -c "from lightflow.data import SyntheticChairs, export_chairs_layout; export_chairs_layout(SyntheticChairs(2, size=(384, 512), seed=2024), '$(DEMO_DIR)/pairs', progress=False)"
	$(PY) tools/demo_flow.py $(PRETRAINED) $(DEMO_DIR)/pairs/data/00001_img1.ppm $(DEMO_DIR)/pairs/data/00001_img2.ppm --out $(DEMO_DIR)/pretrained --force
	if [ -d ../shared/data ]; then \
	  $(PY) tools/eval_real_flow.py $(PRETRAINED) --data ../shared/data --out-dir $(DEMO_DIR)/pretrained_real --video-max-pairs 0; fi
	$(PY) tools/train_flow.py $(DEMO_CFG) --work-dir $(DEMO_DIR) --cfg-options model.pretrained=$(PRETRAINED) optim_wrapper.optimizer.lr=3e-4
	$(PY) tools/test_flow.py $(DEMO_CFG) "$$(cat $(DEMO_DIR)/last_checkpoint)" --work-dir $(DEMO_DIR)/test
	$(PY) tools/demo_flow.py "$$(cat $(DEMO_DIR)/last_checkpoint)" $(DEMO_DIR)/pairs/data/00001_img1.ppm $(DEMO_DIR)/pairs/data/00001_img2.ppm --out $(DEMO_DIR)/flow --force
	@echo "colour flow images: $(DEMO_DIR)/pretrained/ $(DEMO_DIR)/pretrained_real/ (GT | Light Flow | DIS) $(DEMO_DIR)/vis/ $(DEMO_DIR)/flow/"

# The video-detection pipeline on the synthetic VID set (long videos: 20 train / 12 val x 120 frames), the paper's
# recipe, in about an hour on 2 cores: generate data, train the single-frame detector, fine-tune propagation and
# propagation + GRU from it end to end side by side (half the cores each; the GRU on the paper's 8-key clips, the last
# key of half of them blurred so it learns to use its memory (keyblur), inferring over the whole video; the shipped
# Light Flow trainable at lr x0.1), the results table (each detector with its own
# Light Flow, intervals 1-20 and the adaptive policy, and mAP split by the state of each frame's key at interval 10:
# $(VID_DIR)/results/vid_results.md), and an annotated synthetic
# video. `make benchmark-vid` afterwards ranks the motions (zero, DIS MEDIUM, Light Flow, exact motion). Times: README.
VID_DIR := work_dirs/vid
VID_DATA := $(VID_DIR)/synthetic_vid/
VID_OPTS ?=  # extra --cfg-options for training, e.g. VID_OPTS="train_cfg.max_epochs=1" for a quick run
VID_SINGLE := retinanet_mobilenetv2_1xb2-6e_synthvid
VID_DFF := dff_lightflow-w0.5_retinanet_mobilenetv2_1xb2-2e-ft_synthvid
VID_GRU := dff-gru-8keys-keyblur_lightflow-w0.5_retinanet_mobilenetv2_1xb2-2e-ft_synthvid
VID_CKPT = "$$(cat $(VID_DIR)/$(1)/last_checkpoint)"
VID_HALF := $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n / 2 > 0 ? n / 2 : 1 )))
VID_DETECTORS = --detector single-frame configs/vid/$(VID_SINGLE).py $(call VID_CKPT,$(VID_SINGLE)) \
	  --detector propagation configs/vid/$(VID_DFF).py $(call VID_CKPT,$(VID_DFF)) \
	  --detector '+ GRU, 8 keys, keyblur' configs/vid/$(VID_GRU).py $(call VID_CKPT,$(VID_GRU))
demo-vid:
	$(PY) tools/make_synthetic_vid.py $(VID_DATA) --overwrite
	$(PY) tools/train_vid.py configs/vid/$(VID_SINGLE).py --work-dir $(VID_DIR)/$(VID_SINGLE) \
	  --cfg-options data_root=$(VID_DATA) $(VID_OPTS)
	@echo "fine-tuning $(VID_DFF) and $(VID_GRU) side by side ($(VID_HALF) thread(s) each); logs: $(VID_DIR)/<config>.log"
	pids=""; for c in $(VID_DFF) $(VID_GRU); do \
	  OMP_NUM_THREADS=$(VID_HALF) MKL_NUM_THREADS=$(VID_HALF) $(PY) tools/train_vid.py configs/vid/$$c.py \
	    --work-dir $(VID_DIR)/$$c --cfg-options data_root=$(VID_DATA) load_from=$(call VID_CKPT,$(VID_SINGLE)) \
	    $(VID_OPTS) > $(VID_DIR)/$$c.log 2>&1 & pids="$$pids $$!"; \
	done; for p in $$pids; do wait $$p || { echo "a fine-tune failed: see $(VID_DIR)/*.log"; exit 1; }; done
	$(PY) tools/vid_results.py $(VID_DETECTORS) --motions own --intervals 1 5 10 20 --adaptive 3 --key-states 10 \
	  --out-dir $(VID_DIR)/results --cfg-options data_root=$(VID_DATA)
	$(PY) tools/demo_video.py configs/vid/$(VID_GRU).py $(call VID_CKPT,$(VID_GRU)) \
	  $(VID_DATA)Data/val/val_0000 --out $(VID_DIR)/demo.mp4
	if [ -f ../shared/data/video/demo.mp4 ]; then \
	  $(PY) tools/demo_video.py configs/vid/$(VID_GRU).py $(call VID_CKPT,$(VID_GRU)) \
	    ../shared/data/video/demo.mp4 --out $(VID_DIR)/demo_real.mp4 --show-flow; fi

# After `make demo-vid` (~50 min more on 2 cores): motion ranked where the detector uses it (fixed key frames):
# warped-key error and EPE against exact motion on the feature grid in GT boxes, mAP@50 with only the motion swapped,
# (A) in the single-frame detector, (B) in the propagation detector; the results table with DIS MEDIUM and exact
# motion too ($(VID_DIR)/results_motions/); the propagation profile and mAP-vs-fps PNG ($(VID_DIR)/sweep/).
.PHONY: benchmark-vid
benchmark-vid:
	$(PY) tools/benchmark_motion.py configs/vid/$(VID_DFF).py $(call VID_CKPT,$(VID_SINGLE)) --intervals 10 5 20 \
	  --motions zero dis_medium lightflow_w0.5_synthvid exact --out-dir $(VID_DIR)/motion_A --cfg-options data_root=$(VID_DATA)
	$(PY) tools/benchmark_motion.py configs/vid/$(VID_DFF).py $(call VID_CKPT,$(VID_DFF)) --intervals 10 5 20 \
	  --motions zero dis_medium own exact --out-dir $(VID_DIR)/motion_B --cfg-options data_root=$(VID_DATA)
	$(PY) tools/vid_results.py $(VID_DETECTORS) --motions own dis_medium exact --intervals 1 5 10 20 --adaptive 3 \
	  --out-dir $(VID_DIR)/results_motions --cfg-options data_root=$(VID_DATA)
	$(PY) tools/benchmark_vid.py configs/vid/$(VID_DFF).py $(call VID_CKPT,$(VID_DFF)) \
	  --intervals 1 5 10 20 --policies fixed motion --motion-statistic p90_relative --motion-thresholds 3 6 12 \
	  --max-interval 20 --out-dir $(VID_DIR)/sweep --cfg-options data_root=$(VID_DATA)

benchmark-data:
	$(PY) tools/benchmark_data.py --out work_dirs/benchmark_data.md --plot work_dirs/benchmark_data.png

benchmark:
	$(PY) tools/benchmark_flow.py --threads 1 2 --out work_dirs/benchmark_flow.md

# Issue 21: the deployed video detector (lightflow_deploy, ONNX Runtime) side by side with the single-frame detector
# exported the same way and with the same detectors in PyTorch, 1 and 2 threads, after `make demo-vid`:
# $(VID_DIR)/deploy_<config>/benchmark_deploy.md (fps, mAP@50, key / non-key ms, per-part profile).
.PHONY: benchmark-deploy
benchmark-deploy:
	for c in $(VID_DFF) $(VID_GRU); do \
	  $(PY) tools/benchmark_deploy.py configs/vid/$$c.py "$$(cat $(VID_DIR)/$$c/last_checkpoint)" \
	    --single-config configs/vid/$(VID_SINGLE).py --single-ckpt "$$(cat $(VID_DIR)/$(VID_SINGLE)/last_checkpoint)" \
	    --intervals 1 5 10 20 --policies fixed motion --motion-statistic p90_relative --motion-threshold 6 \
	    --threads 1 2 --out-dir $(VID_DIR)/deploy_$$c --cfg-options data_root=$(VID_DATA) || exit 1; \
	done
