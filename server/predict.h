/*
 * predict.h — a model's raw output row -> probabilities -> top-k.
 * Shared by the HTTP server and `resnetd classify` so both answer the same.
 */
#ifndef RESNETD_PREDICT_H
#define RESNETD_PREDICT_H

typedef struct {
    int index;
    double probability;
} predict_entry;

/* Writes the min(k, classes) most probable classes of one output row into
 * res, most probable first (ties: lower index first). The row is treated as
 * logits and soft-maxed, unless it already is a distribution (every value in
 * [0, 1] and the sum within 1e-3 of 1, as a model ending in Softmax gives).
 * res must hold k entries. Returns the count written; allocates nothing. */
int predict_top_k(const float *row, int classes, int k, predict_entry *res);

/* The probability of class i (0 <= i < classes) as predict_top_k reads the
 * row. */
double predict_probability(const float *row, int classes, int i);

#endif
