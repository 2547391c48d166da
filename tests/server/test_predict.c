/* test_predict.c — softmax + top-k against a direct double-precision
 * reference, ties, k > classes, and probability rows passed through. */
#include "check.h"
#include "predict.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    enum { K = 1000 };
    static float row[K];
    srand(1);
    for (int i = 0; i < K; i++)
        row[i] = (float)(rand() % 20000) / 1000.0f - 10.0f;
    double z = 0, mx = -1e30;
    for (int i = 0; i < K; i++)
        mx = fmax(mx, row[i]);
    for (int i = 0; i < K; i++)
        z += exp(row[i] - mx);
    predict_entry res[10];
    CHECK(predict_top_k(row, K, 10, res) == 10);
    for (int j = 0; j < 10; j++) {
        /* the reference: count how many are strictly larger */
        int larger = 0;
        for (int i = 0; i < K; i++)
            larger +=
                row[i] > row[res[j].index] || (row[i] == row[res[j].index] && i < res[j].index);
        CHECK(larger == j);
        CHECK(fabs(res[j].probability - exp(row[res[j].index] - mx) / z) < 1e-12);
    }
    float ties[4] = {1, 3, 3, 0};
    CHECK(predict_top_k(ties, 4, 9, res) == 4);
    CHECK(res[0].index == 1 && res[1].index == 2 && res[2].index == 0 && res[3].index == 3);
    float dist[3] = {0.2f, 0.5f, 0.3f};
    CHECK(predict_top_k(dist, 3, 1, res) == 1);
    CHECK(res[0].index == 1 && fabs(res[0].probability - 0.5) < 1e-7);
    printf("test_predict: ok\n");
    return 0;
}
