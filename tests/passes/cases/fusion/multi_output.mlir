// RUN: fusion dce
// Values of a group used after it (the return, a matmul) become its results: one kernel
// with three outputs.
func.func @main(%x: tensor<3x3xf64>) -> (tensor<3x3xf64>, tensor<3x3xf64>, tensor<3x3xf64>) {
  %e = "gj.exp"(%x) : (tensor<3x3xf64>) -> tensor<3x3xf64>
  %t = "gj.tanh"(%e) : (tensor<3x3xf64>) -> tensor<3x3xf64>
  %n = "gj.neg"(%t) : (tensor<3x3xf64>) -> tensor<3x3xf64>
  %mm = "gj.matmul"(%e, %x) {transpose_a = false, transpose_b = false} : (tensor<3x3xf64>, tensor<3x3xf64>) -> tensor<3x3xf64>
  func.return %t, %n, %mm : tensor<3x3xf64>, tensor<3x3xf64>, tensor<3x3xf64>
}
// CHECK:      [[F:%[0-9]+]]:3 = "gj.fused"(%arg0) ({
// CHECK:        [[E:%[0-9]+]] = "gj.exp"
// CHECK-NEXT:   [[T:%[0-9]+]] = "gj.tanh"([[E]]
// CHECK-NEXT:   [[N:%[0-9]+]] = "gj.neg"([[T]]
// CHECK-NEXT:   "gj.yield"([[E]], [[T]], [[N]]
// CHECK-NEXT: }) : (tensor<3x3xf64>) -> (tensor<3x3xf64>, tensor<3x3xf64>, tensor<3x3xf64>)
// CHECK:      [[MM:%[0-9]+]] = "gj.matmul"([[F]]#0, %arg0
// CHECK-NEXT: func.return [[F]]#1, [[F]]#2, [[MM]]
