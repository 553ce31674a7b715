// The judge of generated digits: any model with the ClassProbabilities capability (core/models/model.h;
// the "classifier" kind, core/models/classifier.h) through that capability alone. Its accuracy on a
// labelled data set, and the fraction of images it is confident about (max probability >= a threshold:
// "recognisable" digits). The judge is trained like every other kind, by the core Trainer
// (`latentlab train-classifier`); nothing here trains.
#pragma once
#include <cstdint>
#include <vector>

#include "core/io/idx.h"
#include "core/models/model.h"

namespace ll {

// Fraction of `data` whose most probable class is the label, in batches of 500. `judge` must have the
// classifier() capability and data.images the model's pixel count (asserted; 0 otherwise).
double classifier_accuracy(Model& judge, const Dataset& data);

// Fraction of images [n, input] (clamped to [0, 1] first, as decoded images may overshoot) whose most
// probable class has probability >= threshold, in batches of 250. With `labels` [n], *matched gets the
// fraction recognised, at that threshold, as their own label.
double judge_confident(Model& judge, std::vector<float> images, float threshold,
                       const std::vector<int32_t>& labels = {}, double* matched = nullptr);

}  // namespace ll
