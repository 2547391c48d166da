/* predict.c — softmax and top-k by partial insertion (k is small). */
#include "predict.h"

#include <math.h>

static double prob(const float *row, int i, int is_dist, double mx, double sum) {
    return is_dist ? (double)row[i] : exp((double)row[i] - mx) / sum;
}

/* Max, whether the row already is a distribution, and softmax's sum. */
static int row_stats(const float *row, int classes, double *mx_out, double *sum_out) {
    double mx = row[0], total = 0;
    int is_dist = 1;
    for (int i = 0; i < classes; i++) {
        if (row[i] > mx)
            mx = row[i];
        if (!(row[i] >= 0.0f && row[i] <= 1.0f))
            is_dist = 0;
        total += row[i];
    }
    if (fabs(total - 1.0) > 1e-3)
        is_dist = 0;
    double sum = 0;
    if (!is_dist)
        for (int i = 0; i < classes; i++)
            sum += exp((double)row[i] - mx);
    *mx_out = mx;
    *sum_out = sum;
    return is_dist;
}

double predict_probability(const float *row, int classes, int i) {
    double mx, sum;
    int is_dist = row_stats(row, classes, &mx, &sum);
    return prob(row, i, is_dist, mx, sum);
}

int predict_top_k(const float *row, int classes, int k, predict_entry *res) {
    if (k > classes)
        k = classes;
    if (k <= 0)
        return 0;
    double mx, sum;
    int is_dist = row_stats(row, classes, &mx, &sum);
    int n = 0;
    for (int i = 0; i < classes; i++) {
        double p = prob(row, i, is_dist, mx, sum);
        if (n == k && p <= res[k - 1].probability)
            continue; /* strict: equal probability keeps the lower index */
        int j = n < k ? n++ : k - 1;
        while (j > 0 && res[j - 1].probability < p) {
            res[j] = res[j - 1];
            j--;
        }
        res[j].index = i;
        res[j].probability = p;
    }
    return n;
}
