// RUN: fusion dce
// exp(x) feeds two reductions. The first joins exp's group and closes it; the second
// reads exp's result from that kernel (a second output) instead of computing exp again.
func.func @main(%x: tensor<4x8xf64>) -> (tensor<4xf64>, tensor<4xf64>) {
  %e = "gj.exp"(%x) : (tensor<4x8xf64>) -> tensor<4x8xf64>
  %s = "gj.reduce_sum"(%e) {axes = [1], keepdims = false} : (tensor<4x8xf64>) -> tensor<4xf64>
  %m = "gj.reduce_max"(%e) {axes = [1], keepdims = false} : (tensor<4x8xf64>) -> tensor<4xf64>
  func.return %s, %m : tensor<4xf64>, tensor<4xf64>
}
// CHECK:      [[F:%[0-9]+]]:2 = "gj.fused"(%arg0) ({
// CHECK:        [[E:%[0-9]+]] = "gj.exp"
// CHECK-NEXT:   [[S:%[0-9]+]] = "gj.reduce_sum"([[E]]
// CHECK-NEXT:   "gj.yield"([[E]], [[S]]
// CHECK-NEXT: }) : (tensor<4x8xf64>) -> (tensor<4x8xf64>, tensor<4xf64>)
// CHECK:      [[G:%[0-9]+]] = "gj.fused"([[F]]#0) ({
// CHECK-NOT:    "gj.exp"
// CHECK:        "gj.reduce_max"
// CHECK:      func.return [[F]]#1, [[G]]
