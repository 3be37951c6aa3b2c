// RUN: fusion dce
// exp(x) feeds two reductions. The first joins exp's group and closes it; the second
// reads exp's result from that kernel (a second output) instead of computing exp again.
func @main(%x: tensor<4x8xf64>) {
  %e = exp %x : (tensor<4x8xf64>) -> tensor<4x8xf64>
  %s = reduce_sum %e {axes = [1], keepdims = false} : (tensor<4x8xf64>) -> tensor<4xf64>
  %m = reduce_max %e {axes = [1], keepdims = false} : (tensor<4x8xf64>) -> tensor<4xf64>
  return %s, %m : (tensor<4xf64>, tensor<4xf64>)
}
// CHECK:      [[F:%[0-9]+]]:2 = fused %arg0 : (tensor<4x8xf64>) -> (tensor<4x8xf64>, tensor<4xf64>) {
// CHECK:        [[E:%[0-9]+]] = exp
// CHECK-NEXT:   [[S:%[0-9]+]] = reduce_sum [[E]]
// CHECK-NEXT:   yield [[E]], [[S]]
// CHECK:      [[G:%[0-9]+]] = fused [[F]]#0 : (tensor<4x8xf64>) -> tensor<4xf64> {
// CHECK-NOT:    exp
// CHECK:        reduce_max
// CHECK:      return [[F]]#1, [[G]]
