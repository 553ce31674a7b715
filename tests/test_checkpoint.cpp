// Tests for resume files (core/train/checkpoint.h): for every kind of the registry, training S steps in
// one go and training k steps, saving a resume file, loading it into a fresh model and trainer and
// training the rest give bit-identical weights, Adam moments, model training state and per-step metrics
// (loss terms, lr, gradient norm), with a cosine schedule and warm-up, clipping, the k-sparse AE's
// annealing, the VQ-VAE's EMA codebook and dead-code restarts, and stops inside and at the end of an
// epoch. And bad resume files: each one error, nothing changed.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/io/safetensors.h"
#include "core/models/model.h"
#include "core/models/model_file.h"
#include "core/train/checkpoint.h"
#include "core/train/trainer.h"
#include "test_util.h"

namespace ll {
namespace {

// A small config of `kind`: 28x28 images (the conv kinds need a square side divisible by 4), hidden 16,
// latent 4, and kind settings that make the state matter (k-sparse annealing from 12 to 4 units, a
// VQ-VAE of 8 codes restarting those unused for 2 steps).
ModelConfig small_config(const std::string& kind, double ema = 1) {
  ModelConfig c;
  c.kind = kind;
  c.input = 784;
  c.hidden = 16;
  c.latent = 4;
  const ModelKind* k = find_model_kind(kind);
  auto set = [&](const char* name, double v) {
    for (const HyperSpec& h : k->hyper)
      if (h.name == name) c.hyper[name] = v;
  };
  set("k", 4);
  set("k_start", 12);
  set("codebook_size", 8);
  set("code_dim", 4);
  set("dead_code_steps", 2);
  set("ema", ema);
  return c;
}

TrainSettings small_settings() {
  TrainSettings s;
  s.batch = 8;
  s.epochs = 3;
  s.seed = 3;
  s.schedule = LrSchedule::kCosine;
  s.warmup = 4;
  s.clip = 200.0;
  return s;
}

// Per-step record: what the per-step log shows, as exact numbers.
struct StepRecord {
  std::vector<double> terms;
  double mse, lr, grad_norm;
  int64_t step;
  int epoch;
  bool clipped;
  bool operator==(const StepRecord& o) const {
    return terms == o.terms && mse == o.mse && lr == o.lr && grad_norm == o.grad_norm && step == o.step &&
           epoch == o.epoch && clipped == o.clipped;
  }
};

// Runs `steps` steps, evaluating on the first 16 images after every epoch (as the CLI evaluates the
// test set): evaluation must not disturb training.
void run_steps(Trainer& t, Model& m, const Dataset& data, int steps, std::vector<StepRecord>* log) {
  for (int i = 0; i < steps; i++) {
    LossTotals totals;
    StepMetrics sm;
    ASSERT_TRUE(t.step(&totals, &sm).ok());
    log->push_back({totals.terms, totals.mse, sm.lr, sm.grad_norm, sm.step, sm.epoch, sm.clipped});
    if (t.step_in_epoch() == 0) {
      Rng eval_rng(1, 3);
      evaluate(m, data, ZMode::kSample, eval_rng, 500, 16);
    }
  }
}

std::unique_ptr<Model> fresh_model(const ModelConfig& c, uint64_t seed) {
  std::unique_ptr<Model> m;
  EXPECT_TRUE(create_model(c, &m).ok()) << c.to_json();
  if (!m) return m;
  Rng init_rng(seed, 1);
  m->init(init_rng);
  return m;
}

bool same_floats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// One go against stop-at-k-and-resume, for every k in `stops`.
void expect_resume_exact(const ModelConfig& config, const Dataset& data, const std::vector<int>& stops) {
  const TrainSettings settings = small_settings();
  auto ref = fresh_model(config, settings.seed);
  ASSERT_TRUE(ref);
  Trainer tref;
  ASSERT_TRUE(tref.setup(ref.get(), &data, settings).ok());
  const int total = static_cast<int>(tref.planned_steps());
  std::vector<StepRecord> ref_log;
  run_steps(tref, *ref, data, total, &ref_log);

  for (int k : stops) {
    SCOPED_TRACE(config.kind + " stopped after step " + std::to_string(k) + " of " + std::to_string(total));
    std::vector<uint8_t> file;
    std::vector<StepRecord> log;
    {
      auto first = fresh_model(config, settings.seed);
      Trainer t;
      ASSERT_TRUE(t.setup(first.get(), &data, settings).ok());
      run_steps(t, *first, data, k, &log);
      file = save_resume_file(*first, t, {{"latentlab.train", settings.to_json()}});
    }  // the first sitting ends: nothing of it survives but the file
    std::unique_ptr<Model> m;
    ResumeState st;
    ASSERT_TRUE(load_resume_file(file.data(), file.size(), &m, &st).ok());
    EXPECT_EQ(st.settings.to_json(), settings.to_json());
    Trainer t;
    ASSERT_TRUE(t.setup(m.get(), &data, st.settings).ok());
    Status s = resume_training(st, m.get(), &t);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(t.steps_done(), k);
    run_steps(t, *m, data, total - k, &log);

    ASSERT_EQ(log.size(), ref_log.size());
    for (size_t i = 0; i < log.size(); i++) EXPECT_TRUE(log[i] == ref_log[i]) << "step " << i + 1 << " differs";
    EXPECT_TRUE(same_floats(m->params().params, ref->params().params)) << "weights differ";
    EXPECT_TRUE(same_floats(m->params().adam_m, ref->params().adam_m)) << "Adam's first moments differ";
    EXPECT_TRUE(same_floats(m->params().adam_v, ref->params().adam_v)) << "Adam's second moments differ";
    const auto a = m->training_state(), b = ref->training_state();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); i++) EXPECT_EQ(a[i].values, b[i].values) << a[i].name;
    EXPECT_EQ(t.position().order, tref.position().order);
    EXPECT_EQ(t.position().rng.state, tref.position().rng.state);
  }
}

// 44 images in batches of 8: 6 steps an epoch (the last of 4 images), 18 in 3 epochs. Stops inside the
// warm-up, inside an epoch, at an epoch's end, and one step before the end.
const std::vector<int> kStops = {1, 6, 10, 17};

TEST(Resume, EveryKindContinuesBitIdentically) {
  const Dataset data = test::synthetic_dataset(44, 28, 28, 11);
  int kinds = 0;
  for (const ModelKind& kind : model_kinds()) {
    if (kind.name.rfind("toy", 0) == 0) continue;  // the test tree's toy kinds (tests/toy_kind.cpp)
    if (kind.input_of) {
      // A kind over grids of categories (the PixelCNN prior): a small grid, trained on code grids.
      ModelConfig c = small_config(kind.name);
      c.hyper = {{"K", 4}, {"H", 4}, {"W", 4}, {"channels", 8}, {"layers", 1}, {"stacks", 2}};
      c.input = kind.input_of(c);
      Dataset grids = test::synthetic_dataset(44, 4, 4, 12);
      for (uint8_t& v : grids.images.pixels) v %= 4;
      grids.categorical = true;
      expect_resume_exact(c, grids, kStops);
    } else {
      expect_resume_exact(small_config(kind.name), data, kStops);
    }
    kinds++;
  }
  EXPECT_GE(kinds, 12);
}

// The VQ-VAE with the codebook loss instead of EMA: a restart clears the code's Adam moments.
TEST(Resume, VqVaeWithoutEmaContinuesBitIdentically) {
  const Dataset data = test::synthetic_dataset(44, 28, 28, 12);
  expect_resume_exact(small_config("vqvae", 0), data, {7});
}

// The VQ-VAE's state really is in the file and really moves (so the test above could fail).
TEST(Resume, VqVaeStateIsSavedAndNotTrivial) {
  const Dataset data = test::synthetic_dataset(44, 28, 28, 11);
  auto m = fresh_model(small_config("vqvae"), 3);
  Trainer t;
  ASSERT_TRUE(t.setup(m.get(), &data, small_settings()).ok());
  std::vector<StepRecord> log;
  run_steps(t, *m, data, 9, &log);
  const auto state = m->training_state();
  double restarts = -1, updates = -1;
  for (const StateTensor& s : state) {
    if (s.name == "restarts") restarts = s.values[0];
    if (s.name == "ema_updates") updates = s.values[0];
  }
  EXPECT_GT(restarts, 0);
  EXPECT_EQ(updates, 9);
  std::vector<uint8_t> file = save_resume_file(*m, t, {});
  SafetensorsFile f;
  ASSERT_TRUE(parse_safetensors(file.data(), file.size(), &f).ok());
  EXPECT_TRUE(f.find(std::string(kResumeTensorPrefix) + "model.steps_since_used"));
  EXPECT_TRUE(f.find(std::string(kResumeTensorPrefix) + "exp_avg_sq.codebook.weight"));
}

// A resume file is a model file: load_model reads it (skipping the state), and gives the same weights.
TEST(Resume, ResumeFileLoadsAsAModel) {
  const Dataset data = test::synthetic_dataset(20, 28, 28, 4);
  auto m = fresh_model(small_config("vae"), 3);
  Trainer t;
  ASSERT_TRUE(t.setup(m.get(), &data, small_settings()).ok());
  std::vector<StepRecord> log;
  run_steps(t, *m, data, 3, &log);
  std::vector<uint8_t> file = save_resume_file(*m, t, {});
  std::unique_ptr<Model> loaded;
  Status s = load_model(file.data(), file.size(), &loaded);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(same_floats(loaded->params().params, m->params().params));
  // Saved again as a model (export, the page's download) with the metadata it came with: the model
  // alone, without a resume position it would not hold the state of.
  std::map<std::string, std::string> came_with;
  ASSERT_TRUE(load_model(file.data(), file.size(), &loaded, &came_with).ok());
  ASSERT_TRUE(came_with.count(kResumeMetadataKey));
  std::vector<uint8_t> again = save_model(*loaded, came_with);
  SafetensorsFile g;
  ASSERT_TRUE(parse_safetensors(again.data(), again.size(), &g).ok());
  EXPECT_FALSE(g.metadata.count(kResumeMetadataKey));
  EXPECT_EQ(g.tensors.size(), m->params().slots().size());
  // Without the resume metadata the same tensors are unexpected (only resume files may carry them).
  SafetensorsFile f;
  ASSERT_TRUE(parse_safetensors(file.data(), file.size(), &f).ok());
  auto meta = f.metadata;
  meta.erase(kResumeMetadataKey);
  std::vector<std::vector<double>> keep;
  std::vector<TensorToWrite> ts;
  for (const SafetensorsTensor& x : f.tensors) {
    size_t n = 1;
    for (int64_t d : x.shape) n *= static_cast<size_t>(d);
    keep.emplace_back(n);
    ASSERT_TRUE(f.read_f64(x, keep.back().data(), n).ok());
  }
  for (size_t i = 0; i < f.tensors.size(); i++) ts.push_back({f.tensors[i].name, f.tensors[i].shape, nullptr, keep[i].data()});
  std::vector<uint8_t> bare = write_safetensors(ts, meta);
  EXPECT_NE(load_model(bare.data(), bare.size(), &loaded).message().find("unexpected tensor 'latentlab.resume."),
            std::string::npos);
}

// ---- bad resume files: one message each; nothing changes ----

struct Fixture {
  Dataset data = test::synthetic_dataset(20, 28, 28, 4);
  std::unique_ptr<Model> model;
  std::vector<uint8_t> file;
  Fixture() {
    model = fresh_model(small_config("vqvae"), 3);
    Trainer t;
    EXPECT_TRUE(t.setup(model.get(), &data, small_settings()).ok());
    std::vector<StepRecord> log;
    run_steps(t, *model, data, 3, &log);
    file = save_resume_file(*model, t, {});
  }
};

// The file rewritten with `edit` applied to its tensors (as doubles) and metadata.
std::vector<uint8_t> rewrite(const std::vector<uint8_t>& file,
                             void (*edit)(std::vector<std::pair<SafetensorsTensor, std::vector<double>>>*,
                                          std::map<std::string, std::string>*)) {
  SafetensorsFile f;
  EXPECT_TRUE(parse_safetensors(file.data(), file.size(), &f).ok());
  std::vector<std::pair<SafetensorsTensor, std::vector<double>>> tensors;
  for (const SafetensorsTensor& x : f.tensors) {
    size_t n = 1;
    for (int64_t d : x.shape) n *= static_cast<size_t>(d);
    std::vector<double> v(n);
    EXPECT_TRUE(f.read_f64(x, v.data(), n).ok());
    tensors.push_back({x, v});
  }
  auto meta = f.metadata;
  edit(&tensors, &meta);
  // Keep each tensor's dtype class: F64 state as F64, the rest F32.
  std::vector<std::vector<float>> f32(tensors.size());
  std::vector<TensorToWrite> ts;
  for (size_t i = 0; i < tensors.size(); i++) {
    const auto& [t, v] = tensors[i];
    if (t.dtype == DType::kF64) {
      ts.push_back({t.name, t.shape, nullptr, v.data()});
    } else {
      f32[i].assign(v.begin(), v.end());
      ts.push_back({t.name, t.shape, f32[i].data()});
    }
  }
  return write_safetensors(ts, meta);
}

std::string load_error(const std::vector<uint8_t>& bytes) {
  std::unique_ptr<Model> m;
  ResumeState st;
  Status s = load_resume_file(bytes.data(), bytes.size(), &m, &st);
  if (!s.ok()) {
    EXPECT_FALSE(m) << "a model came back with an error";
  }
  return s.message();
}

TEST(Resume, BadFilesAreRefusedWithOneMessage) {
  Fixture fx;
  // A plain model file: no optimiser state.
  std::vector<uint8_t> plain = save_model(*fx.model, {});
  EXPECT_NE(load_error(plain).find("no optimiser state"), std::string::npos) << load_error(plain);
  // Truncated.
  std::vector<uint8_t> cut(fx.file.begin(), fx.file.begin() + fx.file.size() / 2);
  EXPECT_NE(load_error(cut).find("truncated"), std::string::npos) << load_error(cut);
  // A moment dropped.
  auto no_moment = rewrite(fx.file, [](auto* t, auto*) {
    for (size_t i = 0; i < t->size(); i++)
      if ((*t)[i].first.name == "latentlab.resume.exp_avg.encoder.0.bias") t->erase(t->begin() + i--);
  });
  EXPECT_NE(load_error(no_moment).find("missing training-state tensor 'latentlab.resume.exp_avg.encoder.0.bias'"),
            std::string::npos) << load_error(no_moment);
  // A state tensor of another shape (another model's).
  auto other_shape = rewrite(fx.file, [](auto* t, auto*) {
    for (auto& [x, v] : *t)
      if (x.name == "latentlab.resume.model.ema_count") x.shape = {4}, v.resize(4);
  });
  EXPECT_NE(load_error(other_shape).find("has shape [4] but the model needs [8]"), std::string::npos)
      << load_error(other_shape);
  // An extra state tensor.
  auto extra = rewrite(fx.file, [](auto* t, auto*) {
    SafetensorsTensor x;
    x.name = "latentlab.resume.model.bogus";
    x.dtype = DType::kF64;
    x.shape = {1};
    t->push_back({x, {1.0}});
  });
  EXPECT_NE(load_error(extra).find("training-state tensors"), std::string::npos) << load_error(extra);
  // A negative count, a non-index in the order, a broken position.
  auto negative = rewrite(fx.file, [](auto* t, auto*) {
    for (auto& [x, v] : *t)
      if (x.name == "latentlab.resume.model.steps_since_used") v[2] = -1;
  });
  EXPECT_EQ(load_error(negative), "");  // values are the model's to check, when resuming (below)
  auto order = rewrite(fx.file, [](auto* t, auto*) {
    for (auto& [x, v] : *t)
      if (x.name == "latentlab.resume.order") v[0] = 0.5;
  });
  EXPECT_NE(load_error(order).find("not an image index"), std::string::npos) << load_error(order);
  auto version = rewrite(fx.file, [](auto*, auto* meta) { (*meta)["latentlab.resume"] = "{\"version\":7}"; });
  EXPECT_NE(load_error(version).find("unknown version"), std::string::npos) << load_error(version);
  auto settings = rewrite(fx.file, [](auto*, auto* meta) {
    std::string& j = (*meta)["latentlab.resume"];
    j.replace(j.find("\"lr\":"), 5, "\"lr\":-");
  });
  EXPECT_NE(load_error(settings).find("lr = -"), std::string::npos) << load_error(settings);

  // Files that load but do not fit: nothing changes in the model or the trainer.
  auto try_resume = [&](const std::vector<uint8_t>& bytes, const Dataset& data) {
    std::unique_ptr<Model> m;
    ResumeState st;
    EXPECT_TRUE(load_resume_file(bytes.data(), bytes.size(), &m, &st).ok());
    Trainer t;
    EXPECT_TRUE(t.setup(m.get(), &data, st.settings).ok());
    const auto params = m->params().params, adam_m = m->params().adam_m;
    const auto state = m->training_state();
    const TrainerPosition before = t.position();
    Status s = resume_training(st, m.get(), &t);
    EXPECT_TRUE(same_floats(params, m->params().params));
    EXPECT_TRUE(same_floats(adam_m, m->params().adam_m));
    const auto after = m->training_state();
    for (size_t i = 0; i < state.size(); i++) EXPECT_EQ(state[i].values, after[i].values) << state[i].name;
    EXPECT_EQ(t.steps_done(), before.step);
    EXPECT_EQ(t.position().order, before.order);
    return s.message();
  };
  const Dataset other = test::synthetic_dataset(24, 28, 28, 4);
  EXPECT_NE(try_resume(fx.file, other).find("covers 20 training images but the data set has 24"), std::string::npos);
  EXPECT_NE(try_resume(negative, fx.data).find("steps_since_used"), std::string::npos);
  auto step = rewrite(fx.file, [](auto*, auto* meta) {
    std::string& j = (*meta)["latentlab.resume"];
    j.replace(j.find("\"step\":3"), 8, "\"step\":4");
  });
  EXPECT_NE(try_resume(step, fx.data).find("does not match"), std::string::npos);
}

}  // namespace
}  // namespace ll
