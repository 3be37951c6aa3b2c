// RUN: cse
// Equal constants are one constant; constants differing in dtype or in the sign of zero
// are not equal.
func @main() {
  %a = constant {value = dense<[1.0, 2.0]> : tensor<2xf64>} : () -> tensor<2xf64>
  %b = constant {value = dense<[1.0, 2.0]> : tensor<2xf64>} : () -> tensor<2xf64>
  %c = constant {value = dense<[1.0, 2.0]> : tensor<2xf32>} : () -> tensor<2xf32>
  %z = constant {value = dense<0.0> : tensor<f64>} : () -> tensor<f64>
  %nz = constant {value = dense<-0.0> : tensor<f64>} : () -> tensor<f64>
  %z2 = constant {value = dense<0.0> : tensor<f64>} : () -> tensor<f64>
  return %a, %b, %c, %z, %nz, %z2 : (tensor<2xf64>, tensor<2xf64>, tensor<2xf32>, tensor<f64>, tensor<f64>, tensor<f64>)
}
// CHECK:      func @main() {
// CHECK-NEXT:   %0 = constant {value = dense<[1.0, 2.0]> : tensor<2xf64>}
// CHECK-NEXT:   %1 = constant {value = dense<[1.0, 2.0]> : tensor<2xf32>}
// CHECK-NEXT:   %2 = constant {value = dense<0.0> : tensor<f64>}
// CHECK-NEXT:   %3 = constant {value = dense<-0.0> : tensor<f64>}
// CHECK-NEXT:   return %0, %0, %1, %2, %3, %2
