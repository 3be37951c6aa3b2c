// RUN: fusion dce
// Values of a group used after it (the return, a matmul) become its results: one kernel
// with three outputs.
func @main(%x: tensor<3x3xf64>) {
  %e = exp %x : (tensor<3x3xf64>) -> tensor<3x3xf64>
  %t = tanh %e : (tensor<3x3xf64>) -> tensor<3x3xf64>
  %n = neg %t : (tensor<3x3xf64>) -> tensor<3x3xf64>
  %mm = matmul %e, %x : (tensor<3x3xf64>, tensor<3x3xf64>) -> tensor<3x3xf64>
  return %t, %n, %mm : (tensor<3x3xf64>, tensor<3x3xf64>, tensor<3x3xf64>)
}
// CHECK:      [[F:%[0-9]+]]:3 = fused %arg0 : (tensor<3x3xf64>) -> (tensor<3x3xf64>, tensor<3x3xf64>, tensor<3x3xf64>) {
// CHECK:        [[E:%[0-9]+]] = exp
// CHECK-NEXT:   [[T:%[0-9]+]] = tanh [[E]]
// CHECK-NEXT:   [[N:%[0-9]+]] = neg [[T]]
// CHECK-NEXT:   yield [[E]], [[T]], [[N]]
// CHECK:      [[MM:%[0-9]+]] = matmul [[F]]#0, %arg0
// CHECK-NEXT: return [[F]]#1, [[F]]#2, [[MM]]
